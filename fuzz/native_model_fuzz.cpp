// shrink's own model file (safetensors + the graph as JSON): load it; when it is a language
// model, decode two tokens, so that the graph's checks stand between a lying file and the kernels.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "shrink/io/llm_import.h"
#include "shrink/io/native_model.h"
#include "shrink/nn/decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shrink;
  const std::string path = fuzz::scratch_file(data, size, ".shrink");
  fuzz::expect_success_or_error([&] { (void)io::load_model(path); });
  fuzz::expect_success_or_error([&] {
    io::LanguageModel model = io::load_language_model(path);
    nn::Decoder decoder(model.graph);
    const int32_t tokens[2] = {0, 1};
    (void)decoder.feed(tokens);
  });
  return 0;
}
