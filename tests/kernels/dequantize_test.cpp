// Every dequantization variant against the scalar reference, bit for bit, on random blocks (with
// finite scales) at awkward block counts. The reference itself is checked against the PyPI gguf
// package's values in tests/io (gguf_reader_test.cpp) and against hand-computed blocks here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernel_test_support.h"
#include "shrink/core/half.h"
#include "shrink/core/rng.h"

namespace shrink {
namespace {

struct Format {
  const char* name;
  std::span<const KernelVariant<DequantizeFn>> (*variants)();
  int block_size, block_bytes;
  std::vector<int> scale_offsets;  // fp16 fields set to finite values
};

std::vector<Format> formats() {
  return {{"q4_0", dequantize_q4_0_variants, 32, 18, {0}},       {"q4_1", dequantize_q4_1_variants, 32, 20, {0, 2}},
          {"q5_0", dequantize_q5_0_variants, 32, 22, {0}},       {"q5_1", dequantize_q5_1_variants, 32, 24, {0, 2}},
          {"q8_0", dequantize_q8_0_variants, 32, 34, {0}},       {"q4_k", dequantize_q4_k_variants, 256, 144, {0, 2}},
          {"q6_k", dequantize_q6_k_variants, 256, 210, {208}}};
}

TEST(Dequantize, EveryVariantMatchesTheReference) {
  Rng rng(5);
  for (const Format& format : formats()) {
    SCOPED_TRACE(format.name);
    const int64_t max_blocks = 1 + 257;  // the variants start one block in, for up to 257 blocks
    std::vector<uint8_t> blocks(size_t(max_blocks * format.block_bytes));
    for (auto& byte : blocks) byte = uint8_t(rng.next_u32());
    for (int64_t b = 0; b < max_blocks; ++b)
      for (int offset : format.scale_offsets) {
        const uint16_t scale = f32_to_f16(rng.normal(0.f, 0.05f));
        std::memcpy(&blocks[size_t(b * format.block_bytes + offset)], &scale, 2);
      }
    std::vector<float> expected(size_t(max_blocks * format.block_size));
    format.variants().front().fn(blocks.data(), expected.data(), int64_t(expected.size()));
    for (float x : expected) ASSERT_TRUE(std::isfinite(x));
    const int ran = testing::for_each_variant(format.variants(), [&](const auto& variant) {
      for (int64_t count : testing::kAwkwardSizes) {
        std::vector<float> actual(size_t(count * format.block_size) + 1, -7.f);
        variant.fn(blocks.data() + format.block_bytes, actual.data(), count * format.block_size);
        ASSERT_EQ(std::memcmp(actual.data(), expected.data() + format.block_size, (actual.size() - 1) * 4), 0)
            << count << " blocks";
        ASSERT_EQ(actual.back(), -7.f) << "wrote past the end";
      }
    });
    EXPECT_GE(ran, 1);
  }
}

// Hand-built blocks with values worked out from the format descriptions.
TEST(Dequantize, ReferenceDecodesHandBuiltBlocks) {
  uint8_t q4_0[18] = {};
  const uint16_t two = f32_to_f16(2.f);
  std::memcpy(q4_0, &two, 2);
  q4_0[2] = 0x9f;  // element 0: low nibble 15 -> (15-8)*2 = 14; element 16: high nibble 9 -> 2
  float out[32];
  dequantize_q4_0_variants().front().fn(q4_0, out, 32);
  EXPECT_EQ(out[0], 14.f);
  EXPECT_EQ(out[16], 2.f);
  EXPECT_EQ(out[1], -16.f);  // nibble 0 -> -8 * 2

  uint8_t q5_1[24] = {};
  const uint16_t half = f32_to_f16(0.5f), minus_one = f32_to_f16(-1.f);
  std::memcpy(q5_1, &half, 2);
  std::memcpy(q5_1 + 2, &minus_one, 2);
  q5_1[4] = 0x01;          // fifth bit of element 0
  q5_1[7] = 0x80;          // bit 31: fifth bit of element 31 (= 16 + 15)
  q5_1[8] = 0x03;          // element 0 low nibble 3 -> 16 + 3 = 19 -> 19*0.5 - 1 = 8.5
  q5_1[8 + 15] = 0x70;     // element 31 high nibble 7 -> 16 + 7 = 23 -> 10.5
  dequantize_q5_1_variants().front().fn(q5_1, out, 32);
  EXPECT_EQ(out[0], 8.5f);
  EXPECT_EQ(out[31], 10.5f);
  EXPECT_EQ(out[1], -1.f);
}

}  // namespace
}  // namespace shrink
