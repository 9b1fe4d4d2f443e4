// ONNX bytes: read every tensor and op (subgraphs included), and when the file imports as a
// network shrink knows (Silero VAD), run it on a quarter second of a tone.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.h"
#include "io/onnx_reader.h"
#include "shrink/core/mapped_file.h"
#include "shrink/eval/voice_activity.h"
#include "shrink/io/inspect.h"
#include "shrink/io/onnx_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shrink;
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  bool parsed = false;
  fuzz::expect_success_or_error([&] {
    (void)io::read_onnx(*memory_source(std::move(bytes), "fuzz input"));
    parsed = true;
  });
  if (!parsed) return 0;
  const std::string path = fuzz::scratch_file(data, size, ".onnx");
  fuzz::expect_success_or_error([&] { (void)summarize_model(path); });
  fuzz::expect_success_or_error([&] {
    io::LoadedModel model = io::import_onnx(path);
    std::vector<float> tone(4000);
    for (size_t i = 0; i < tone.size(); ++i) tone[i] = float(0.3 * std::sin(0.1 * double(i)));
    (void)eval::speech_probabilities(model.graph, tone);
  });
  return 0;
}
