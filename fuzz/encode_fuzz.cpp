// Arbitrary bytes (invalid UTF-8 included) as text for the tokenizers in the seed folder's
// tokenizer files (SHRINK_FUZZ_TOKENIZERS: a folder of TextTokenizer::to_json files, made by
// fuzz_make_seeds): encode with and without special tokens, decode, and decode one token at a time.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "shrink/io/text_tokenizer.h"

namespace {
std::vector<std::unique_ptr<shrink::TextTokenizer>> load_tokenizers() {
  std::vector<std::unique_ptr<shrink::TextTokenizer>> out;
  const char* folder = std::getenv("SHRINK_FUZZ_TOKENIZERS");
  if (!folder) return out;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    std::ifstream in(entry.path());
    out.push_back(shrink::tokenizer_from_json(nlohmann::json::parse(in)));
  }
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizers = load_tokenizers();
  if (tokenizers.empty()) __builtin_trap();  // misconfigured: say so at once
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto& tokenizer : tokenizers)
    for (bool special : {false, true})
      shrink::fuzz::expect_success_or_error([&] {
        const auto ids = tokenizer->encode(text, special);
        (void)tokenizer->decode(ids);
        for (int32_t id : ids) (void)tokenizer->token_text(id);
      });
  return 0;
}
