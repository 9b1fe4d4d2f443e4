// A shrink model file whose graph (the JSON in its metadata) is the input, around the tensors
// and the language-model provenance of a seed model (SHRINK_FUZZ_GRAPH_SEED: a .shrink file made
// by fuzz_make_seeds): load it and decode a 3-token prompt and one more token, so that a lying
// graph (wrong shapes, attributes, wiring, kinds) must be refused by the graph's checks before
// any kernel runs. Run with the dictionary fuzz_make_seeds writes (the seed graph's strings).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "shrink/io/llm_import.h"
#include "shrink/io/native_model.h"
#include "shrink/io/safetensors.h"
#include "shrink/nn/decoder.h"

namespace {
struct Seed {
  std::vector<shrink::NamedTensor> tensors;
  std::string provenance;
};
Seed load_seed() {
  const char* path = std::getenv("SHRINK_FUZZ_GRAPH_SEED");
  if (!path) __builtin_trap();  // misconfigured: say so at once
  const shrink::SafetensorsFile file = shrink::SafetensorsFile::open(path);
  Seed seed;
  for (const auto& entry : file.entries()) seed.tensors.push_back({entry.name, file.tensor(entry.name).clone()});
  for (const auto& [key, value] : file.metadata())
    if (key == "shrink.provenance") seed.provenance = value;
  return seed;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shrink;
  static const Seed seed = load_seed();
  const std::string path = fuzz::scratch_path(".shrink");
  fuzz::expect_success_or_error([&] {
    save_safetensors(path, seed.tensors,  // refuses text that is not UTF-8
                     {{"shrink.format", io::kNativeFormatTag},
                      {"shrink.graph", std::string(reinterpret_cast<const char*>(data), size)},
                      {"shrink.provenance", seed.provenance}});
    io::LanguageModel model = io::load_language_model(path);
    nn::Decoder decoder(model.graph);
    const int32_t prompt[3] = {0, 1, 2}, next[1] = {3};
    (void)decoder.feed(prompt);
    (void)decoder.feed(next);
  });
  return 0;
}
