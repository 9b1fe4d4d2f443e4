// A Hugging Face folder whose config.json is the input, beside the weights and tokenizer of a
// seed folder (SHRINK_FUZZ_HF_SEED: the tiny Llama fuzz_make_seeds writes in Hugging Face's
// layout): load it and decode two tokens, so that a config that disagrees with the weights (sizes,
// head counts, types, model_type) must be refused before anything is allocated or run from it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "fuzz_support.h"

namespace {
// A per-process folder holding links to the seed's weights and tokenizer.
std::string make_folder() {
  const char* seed = std::getenv("SHRINK_FUZZ_HF_SEED");
  if (!seed) __builtin_trap();  // misconfigured: say so at once
  namespace fs = std::filesystem;
  const fs::path folder = shrink::fuzz::scratch_path(".hf");
  fs::create_directories(folder);
  for (const char* file : {"model.safetensors", "tokenizer.json"}) {
    fs::remove(folder / file);
    fs::create_symlink(fs::absolute(fs::path(seed) / file), folder / file);
  }
  return folder.string();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shrink;
  static const std::string folder = make_folder();
  fuzz::write_input(folder + "/config.json", data, size);
  fuzz::load_and_decode_two_tokens(folder);
  return 0;
}
