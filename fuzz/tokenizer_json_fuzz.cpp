// A tokenizer as stored in shrink's model files (TextTokenizer::to_json): rebuild it, then
// encode and decode a fixed text with it.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "fuzz_support.h"
#include "shrink/io/text_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shrink;
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  fuzz::expect_success_or_error([&] {
    const auto tokenizer = tokenizer_from_json(j);
    for (bool special : {false, true}) {
      const auto ids = tokenizer->encode("Hello, world! It's 2026: caf\xc3\xa9 <|im_start|> [CLS] ##ing", special);
      (void)tokenizer->decode(ids);
      for (int32_t id : ids) (void)tokenizer->token_text(id);
    }
  });
  return 0;
}
