// shrink's own model file (safetensors + the graph as JSON): load it; when it is a language
// model, decode two tokens, so that the graph's checks stand between a lying file and the kernels.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "shrink/io/native_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shrink;
  const std::string path = fuzz::scratch_file(data, size, ".shrink");
  fuzz::expect_success_or_error([&] { (void)io::load_model(path); });
  fuzz::load_and_decode_two_tokens(path);
  return 0;
}
