// WAV bytes: read, then resample to 16 kHz (the first second at most, to keep each run short).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_support.h"
#include "shrink/core/mapped_file.h"
#include "shrink/io/wav.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shrink;
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  fuzz::expect_success_or_error([&] {
    const io::Audio audio = io::read_wav(*memory_source(std::move(bytes), "fuzz input"));
    const size_t second = std::min(audio.samples.size(), size_t(audio.sample_rate));
    (void)io::resample(std::span(audio.samples).first(second), audio.sample_rate, 16000);
  });
  return 0;
}
