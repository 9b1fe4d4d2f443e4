// f32 -> Q8_0 / Q4_0 / Q4_1: the reference reproduces the PyPI gguf package's blocks byte for
// byte (tests/fixtures/gguf, made by tools/make_gguf_fixtures.py), every variant reproduces the
// reference (including rounding ties, degenerate blocks and scales whose f16 is subnormal or large),
// and blocks dequantize back closely.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernel_test_support.h"
#include "shrink/core/rng.h"
#include "shrink/io/gguf.h"
#include "test_support.h"

namespace shrink {
namespace {

struct Format {
  const char* tensor;  // in the fixture
  int source;          // index of its 3 x 64 float input in sources.f32
  std::span<const KernelVariant<QuantizeBlocksFn>> (*variants)();
  DequantizeFn (*dequantize)();
  size_t block_bytes;
};

std::vector<Format> formats() {
  return {{"quantized.q8_0", 4, quantize_q8_0_variants, [] { return kernels().dequantize_q8_0; }, 34},
          {"quantized.q4_0", 0, quantize_q4_0_variants, [] { return kernels().dequantize_q4_0; }, 18},
          {"quantized.q4_1", 1, quantize_q4_1_variants, [] { return kernels().dequantize_q4_1; }, 20}};
}

TEST(QuantizeGgml, ReferenceMatchesTheGgufPackageByteForByte) {
  const auto source_bytes = testing::read_bytes(testing::fixture_path("gguf/sources.f32"));
  const auto* sources = reinterpret_cast<const float*>(source_bytes.data());
  const GgufFile file = GgufFile::open(testing::fixture_path("gguf/all_types.gguf"));
  for (const Format& f : formats()) {
    SCOPED_TRACE(f.tensor);
    const auto expected = file.tensor_bytes(*file.find_tensor(f.tensor));
    std::vector<std::byte> blocks(expected.size());
    f.variants().front().fn(sources + f.source * 192, blocks.data(), 192);
    EXPECT_EQ(std::memcmp(blocks.data(), expected.data(), blocks.size()), 0);
  }
}

std::vector<float> awkward_values(int64_t blocks, Rng& rng) {
  std::vector<float> x(size_t(blocks * 32));
  for (auto& v : x) v = rng.normal(0.f, 2.f);
  if (blocks >= 4) {
    std::fill(x.begin(), x.begin() + 32, 0.f);  // all zero: d = 0
    std::fill(x.begin() + 32, x.begin() + 64, 1.5f);  // constant: Q4_1 d = 0
    for (int j = 0; j < 32; ++j) x[size_t(64 + j)] = float(j - 16) + 0.5f;  // ties after scaling
    x[64] = -127.f;
    for (int j = 0; j < 32; ++j) x[size_t(96 + j)] = j % 2 ? -3.f : 3.f;  // equal magnitudes, both signs
  }
  if (blocks >= 8) {  // scales whose f16 is subnormal, and large ones (the vector f16 conversion)
    for (int j = 0; j < 32; ++j) x[size_t(128 + j)] *= 1e-6f;
    for (int j = 0; j < 32; ++j) x[size_t(160 + j)] *= 5e3f;
  }
  return x;
}

TEST(QuantizeGgml, EveryVariantMatchesTheReference) {
  Rng rng(12);
  for (const Format& f : formats()) {
    SCOPED_TRACE(f.tensor);
    for (int64_t blocks : {1, 2, 4, 7, 8, 9, 16, 33}) {  // 8 at a time, and the rest
      const std::vector<float> x = awkward_values(blocks, rng);
      std::vector<std::byte> expected(size_t(blocks) * f.block_bytes);
      f.variants().front().fn(x.data(), expected.data(), blocks * 32);
      const int ran = testing::for_each_variant(f.variants(), [&](const auto& variant) {
        std::vector<std::byte> out(expected.size() + 1, std::byte{0x5a});
        variant.fn(x.data(), out.data(), blocks * 32);
        EXPECT_EQ(std::memcmp(out.data(), expected.data(), expected.size()), 0) << blocks << " blocks";
        EXPECT_EQ(out.back(), std::byte{0x5a}) << "wrote past the last block";
      });
      EXPECT_GE(ran, 1);
      // And the blocks decode to within one quantization step of the input.
      std::vector<float> back(x.size());
      f.dequantize()(expected.data(), back.data(), blocks * 32);
      for (int64_t b = 0; b < blocks; ++b) {
        float lo = x[size_t(b * 32)], hi = lo;
        for (int j = 0; j < 32; ++j) {
          lo = std::min(lo, x[size_t(b * 32 + j)]);
          hi = std::max(hi, x[size_t(b * 32 + j)]);
        }
        const float step = std::max(std::fabs(lo), std::fabs(hi)) / (f.block_bytes == 34 ? 127.f : 7.f) + (hi - lo) / 15.f;
        for (int j = 0; j < 32; ++j) EXPECT_NEAR(back[size_t(b * 32 + j)], x[size_t(b * 32 + j)], step * 1.01f + 1e-3f);
      }
    }
  }
}

}  // namespace
}  // namespace shrink
