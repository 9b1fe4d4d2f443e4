// Every conversion variant against the scalar reference, bit for bit: exhaustive over the 16-bit
// patterns, and random plus special floats, at awkward lengths and unaligned offsets.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "kernel_test_support.h"
#include "shrink/core/rng.h"

namespace shrink {
namespace {

std::vector<uint16_t> all_halves() {
  std::vector<uint16_t> v(65536);
  for (uint32_t i = 0; i < 65536; ++i) v[i] = uint16_t(i);
  return v;
}

std::vector<float> test_floats() {
  Rng rng(11);
  std::vector<float> v = {0.f, -0.f, 1.f, -1.f, 65504.f, 65519.f, 65520.f, 1e-8f, 6e-8f, 1e-39f, -1e-39f,
                          INFINITY, -INFINITY, NAN, std::bit_cast<float>(0x7f800001u), 3.4e38f, 1.17549435e-38f};
  for (int i = 0; i < 20000; ++i) v.push_back(std::ldexp(rng.uniform(-1.f, 1.f), int(rng.below(80)) - 40));
  for (int i = 0; i < 2000; ++i) v.push_back(std::bit_cast<float>(uint32_t(rng.next_u32())));  // any bits
  return v;
}

template <class Fn, class In, class Out>
void check_to_f32_like(std::span<const KernelVariant<Fn>> variants, const std::vector<In>& input) {
  const Fn reference = variants.front().fn;
  std::vector<Out> expected(input.size());
  reference(input.data(), expected.data(), int64_t(input.size()));
  const int ran = testing::for_each_variant(variants, [&](const auto& variant) {
    std::vector<Out> actual(input.size());
    variant.fn(input.data(), actual.data(), int64_t(input.size()));
    ASSERT_EQ(std::memcmp(actual.data(), expected.data(), actual.size() * sizeof(Out)), 0);
    for (int64_t n : testing::kAwkwardSizes) {
      for (int64_t offset : {0, 1, 3}) {
        std::vector<Out> part(size_t(n) + 1, Out{});
        const Out sentinel = part[size_t(n)];
        variant.fn(input.data() + offset, part.data(), n);
        ASSERT_EQ(std::memcmp(part.data(), expected.data() + offset, size_t(n) * sizeof(Out)), 0) << "n=" << n;
        ASSERT_EQ(std::memcmp(&part[size_t(n)], &sentinel, sizeof(Out)), 0) << "wrote past n=" << n;
      }
    }
  });
  EXPECT_GE(ran, 1);
}

TEST(Convert, F16ToF32) { check_to_f32_like<ConvertToF32Fn, uint16_t, float>(convert_f16_to_f32_variants(), all_halves()); }
TEST(Convert, Bf16ToF32) { check_to_f32_like<ConvertToF32Fn, uint16_t, float>(convert_bf16_to_f32_variants(), all_halves()); }
TEST(Convert, F32ToF16) { check_to_f32_like<ConvertFromF32Fn, float, uint16_t>(convert_f32_to_f16_variants(), test_floats()); }
TEST(Convert, F32ToBf16) { check_to_f32_like<ConvertFromF32Fn, float, uint16_t>(convert_f32_to_bf16_variants(), test_floats()); }

}  // namespace
}  // namespace shrink
