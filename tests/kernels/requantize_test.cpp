// The requantizing u8 add: every variant equals the scalar reference byte for byte (all 256 x 256
// input pairs, with and without the fused ReLU, zero points at both ends, awkward lengths), and
// the reference equals the dequantize-add-quantize formula written out in double precision.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernel_test_support.h"

namespace shrink {
namespace {

struct Case {
  float a_scale, b_scale, out_scale;
  int a_zero, b_zero, out_zero;
  bool relu;
};

AddU8Params params(const Case& c) {
  return {c.a_scale, c.b_scale, -(float(c.a_zero) * c.a_scale + float(c.b_zero) * c.b_scale),
          c.relu ? 0.f : -INFINITY, 1.f / c.out_scale, float(c.out_zero), 127.f};
}

TEST(AddU8, VariantsMatchTheReferenceOnEveryInputPair) {
  std::vector<uint8_t> a, b;
  for (int i = 0; i < 256; ++i)
    for (int j = 0; j < 256; ++j) a.push_back(uint8_t(i)), b.push_back(uint8_t(j));
  const int64_t n = int64_t(a.size());
  for (const Case& c : {Case{0.05f, 0.031f, 0.07f, 0, 0, 0, true}, Case{0.013f, 0.2f, 0.11f, 64, 3, 127, false},
                        Case{0.5f, 0.5f, 0.01f, 127, 127, 40, false}, Case{1e-3f, 2e-3f, 1e-4f, 10, 90, 0, true}}) {
    const AddU8Params p = params(c);
    std::vector<uint8_t> expected(a.size());
    add_u8_variants().front().fn(a.data(), b.data(), n, p, expected.data());
    const int ran = testing::for_each_variant(add_u8_variants(), [&](const auto& variant) {
      std::vector<uint8_t> y(a.size(), 0xee);
      variant.fn(a.data(), b.data(), n, p, y.data());
      ASSERT_EQ(y, expected);
      for (int64_t len : testing::kAwkwardSizes) {  // tails, from an odd offset
        std::vector<uint8_t> part(static_cast<size_t>(len) + 1, 0xee);
        variant.fn(a.data() + 1001, b.data() + 1001, len, p, part.data());
        for (int64_t i = 0; i < len; ++i) ASSERT_EQ(part[size_t(i)], expected[size_t(1001 + i)]) << i;
        ASSERT_EQ(part[size_t(len)], 0xee) << "wrote past n";
      }
    });
    EXPECT_GE(ran, 1);
    // The reference is the formula: dequantize both, add, ReLU, round half to even, clamp.
    for (int64_t i = 0; i < n; i += 37) {
      double v = c.a_scale * (double(a[size_t(i)]) - c.a_zero) + c.b_scale * (double(b[size_t(i)]) - c.b_zero);
      if (c.relu) v = std::max(v, 0.0);
      const double q = std::clamp(std::nearbyint(v / c.out_scale) + c.out_zero, 0.0, 127.0);
      EXPECT_NEAR(double(expected[size_t(i)]), q, 1.0) << i;  // f32 rounding may flip a tie
    }
  }
}

}  // namespace
}  // namespace shrink
