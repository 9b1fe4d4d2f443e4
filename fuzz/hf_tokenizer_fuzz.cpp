// A Hugging Face tokenizer.json (BPE with a ByteLevel pre-tokenizer, or WordPiece): build the
// tokenizer from it, then encode and decode a fixed text with it.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "shrink/io/text_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shrink;
  fuzz::expect_success_or_error([&] {
    const auto tokenizer = tokenizer_from_hf_json(fuzz::scratch_file(data, size, ".json"));
    for (bool special : {false, true}) {
      const auto ids = tokenizer->encode("Hello, world! It's 2026: caf\xc3\xa9 <|im_start|> [CLS] ##ing 12345", special);
      (void)tokenizer->decode(ids);
      for (int32_t id : ids) (void)tokenizer->token_text(id);
    }
  });
  return 0;
}
