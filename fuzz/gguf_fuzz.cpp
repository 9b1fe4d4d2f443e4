// GGUF bytes: parse, dequantize every tensor the reader says it can, show every metadata value,
// build the tokenizer, and import as a Llama model (then decode two tokens with it).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.h"
#include "shrink/core/mapped_file.h"
#include "shrink/io/gguf.h"
#include "shrink/io/text_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shrink;
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  bool parsed = false;
  fuzz::expect_success_or_error([&] {
    const GgufFile file = GgufFile::parse(memory_source(std::move(bytes), "fuzz input"));
    parsed = true;
    for (const auto& info : file.tensors())
      if (file.can_dequantize(info)) file.to_f32(info);
    for (const auto& [key, value] : file.metadata()) (void)value.display();
    fuzz::expect_success_or_error([&] { (void)tokenizer_from_gguf(file); });
  });
  if (!parsed) return 0;
  fuzz::load_and_decode_two_tokens(fuzz::scratch_file(data, size, ".gguf"));
  return 0;
}
