// f16/bf16 conversions: exhaustive over every 16-bit pattern, and rounding checked as a property
// (the result is the nearest representable value, ties to even) on many random floats.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "shrink/core/half.h"
#include "shrink/core/rng.h"

namespace shrink {
namespace {

// Independent formula for a half's value: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024.
double half_value(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  double magnitude = exponent == 0 ? std::ldexp(mantissa / 1024.0, -14)
                                   : std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
  if (exponent == 0x1f) magnitude = mantissa ? NAN : INFINITY;
  return sign ? -magnitude : magnitude;
}

TEST(Half, EveryHalfConvertsToItsExactValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const double expected = half_value(uint16_t(h));
    const float actual = f16_to_f32(uint16_t(h));
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(actual)) << h;
    } else {
      EXPECT_EQ(double(actual), expected) << "half bits " << h;
    }
  }
}

TEST(Half, EveryFiniteHalfSurvivesARoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff)) continue;  // nan payloads checked below
    EXPECT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h);
  }
  EXPECT_EQ(f32_to_f16(NAN) & 0x7e00, 0x7e00);  // stays a quiet nan
  EXPECT_EQ(std::bit_cast<uint32_t>(f16_to_f32(0x7c01)), 0x7fc02000u);  // signalling nan is quieted
}

// |x - value(h)| is minimal over h and its neighbours; on a tie h is even.
void expect_nearest_half(float x) {
  const uint16_t h = f32_to_f16(x);
  const double error = std::fabs(double(x) - double(f16_to_f32(h)));
  if ((h & 0x7fff) == 0x7c00) {  // overflow to inf: only when |x| >= 65520
    EXPECT_GE(std::fabs(x), 65520.0f) << x;
    return;
  }
  for (int delta : {-1, 1}) {
    const uint16_t neighbour = uint16_t(h + delta);
    if ((neighbour & 0x7fff) >= 0x7c00 || ((h & 0x7fff) == 0 && delta == -1)) continue;
    const double other = std::fabs(double(x) - double(f16_to_f32(neighbour)));
    EXPECT_LE(error, other) << "x=" << x << " chose " << h;
    if (error == other) {
      EXPECT_EQ(h & 1, 0) << "tie not to even for x=" << x;
    }
  }
}

TEST(Half, RoundsToNearestEven) {
  Rng rng(1);
  for (int i = 0; i < 200000; ++i) {
    const float scale = std::ldexp(1.0f, int(rng.below(44)) - 28);  // 2^-28 .. 2^15
    expect_nearest_half(rng.uniform(-1.f, 1.f) * scale);
  }
  for (uint32_t h = 0; h < 0x7bff; ++h) {  // exact midpoints between neighbouring halves
    const float mid = float((double(f16_to_f32(uint16_t(h))) + double(f16_to_f32(uint16_t(h + 1)))) / 2);
    expect_nearest_half(mid);
  }
  EXPECT_EQ(f32_to_f16(65504.f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.f), 0x7c00);
  EXPECT_EQ(f32_to_f16(1e-8f), 0);
  EXPECT_EQ(f32_to_f16(-0.f), 0x8000);
}

TEST(BFloat16, ConvertsAndRoundsToNearestEven) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float value = bf16_to_f32(uint16_t(b));
    EXPECT_EQ(std::bit_cast<uint32_t>(value), b << 16);
    if (!std::isnan(value)) {
      EXPECT_EQ(f32_to_bf16(value), b);
    }
  }
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);  // above the tie
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7f800001u)))));  // snan stays nan
}

}  // namespace
}  // namespace shrink
