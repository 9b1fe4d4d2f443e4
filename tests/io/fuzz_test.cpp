// Fuzz-style robustness: hundreds of mutated headers fed to both readers. Each must either read
// the file (and then dequantize every tensor without touching memory it should not) or throw a
// shrink::Error. Run under ASan (scripts/test.sh does) to catch any out-of-bounds access.
#include <gtest/gtest.h>

#include <cstring>

#include "shrink/core/rng.h"
#include "shrink/io/gguf.h"
#include "shrink/io/safetensors.h"
#include "test_support.h"

namespace shrink {
namespace {

// Mutations that target the header: flipped bits, overwritten bytes, planted huge or small
// integers (counts, lengths, offsets), cut files, swapped spans.
std::vector<std::byte> mutate(std::vector<std::byte> bytes, size_t header_end, Rng& rng) {
  const int edits = 1 + int(rng.below(4));
  for (int e = 0; e < edits && !bytes.empty(); ++e) {
    const size_t at = size_t(rng.below(std::min(header_end, bytes.size())));
    switch (rng.below(5)) {
      case 0: bytes[at] ^= std::byte(1u << rng.below(8)); break;
      case 1: bytes[at] = std::byte(rng.next_u32()); break;
      case 2: {
        const uint64_t values[] = {0, 1, 0xff, 0xffffffffull, uint64_t(1) << 32, uint64_t(1) << 62, UINT64_MAX, 31, 33};
        const uint64_t v = values[rng.below(std::size(values))];
        std::memcpy(bytes.data() + at, &v, std::min<size_t>(8, bytes.size() - at));
        break;
      }
      case 3: bytes.resize(size_t(rng.below(bytes.size() + 1))); break;
      case 4: {
        const size_t from = size_t(rng.below(bytes.size())), length = std::min<size_t>(rng.below(16), bytes.size() - std::max(at, from));
        std::memmove(bytes.data() + at, bytes.data() + from, length);
        break;
      }
    }
  }
  return bytes;
}

TEST(Fuzz, GgufReaderSurvivesMutatedHeaders) {
  const auto original = testing::read_bytes(testing::fixture_path("gguf/all_types.gguf"));
  const size_t header_end = GgufFile::parse(memory_source(original, "fixture")).data_offset();
  Rng rng(2026);
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 1500; ++i) {
    auto bytes = mutate(original, header_end, rng);
    try {
      const GgufFile file = GgufFile::parse(memory_source(std::move(bytes), "mutant"));
      for (const auto& info : file.tensors())
        if (file.can_dequantize(info)) file.to_f32(info);
      for (const auto& [key, value] : file.metadata()) (void)value.display();
      ++accepted;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 100);  // the mutations do reach the validation
  EXPECT_GT(accepted, 10);   // and some survive to exercise dequantization of odd files
}

TEST(Fuzz, SafetensorsReaderSurvivesMutatedHeaders) {
  testing::ScratchDir dir;
  Tensor a = Tensor::empty({4, 3}, DType::f32), b = Tensor::empty({7}, DType::bf16);
  save_safetensors(dir.file("m.safetensors"), {{"layer.weight", a}, {"layer.bias", b}}, {{"format", "pt"}});
  const auto original = testing::read_bytes(dir.file("m.safetensors"));
  const size_t header_end = 8 + SafetensorsFile::parse(memory_source(original, "fixture")).header_bytes();
  Rng rng(99);
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 1500; ++i) {
    auto bytes = mutate(original, header_end, rng);
    try {
      const SafetensorsFile file = SafetensorsFile::parse(memory_source(std::move(bytes), "mutant"));
      for (const auto& entry : file.entries()) file.tensor(entry.name).to(DType::f32);
      ++accepted;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(accepted, 10);
}

}  // namespace
}  // namespace shrink
