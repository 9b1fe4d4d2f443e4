// Exact scalar conversions between f32 and the 16-bit floats (IEEE half, bfloat16).
// Bit manipulation only, so results do not depend on the FPU's denormal mode. These are the
// reference that the SIMD conversion kernels are tested against.
#pragma once
#include <bit>
#include <cstdint>

namespace shrink {

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) {
    // inf, or nan: quieted with its payload kept, as IEEE conversion and F16C's vcvtph2ps do
    bits = sign | 0x7f800000u | (mantissa ? 0x400000u : 0u) | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal half: normalise
    int shift = std::countl_zero(mantissa) - 21;  // leading zeros within the 10-bit field + 1
    mantissa = (mantissa << shift) & 0x3ff;
    bits = sign | uint32_t(113 - shift) << 23 | (mantissa << 13);
  }
  return std::bit_cast<float>(bits);
}

// Round to nearest, ties to even; overflow gives inf; nan stays nan (quiet).
inline uint16_t f32_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return sign | (abs > 0x7f800000u ? 0x7e00 | ((abs >> 13) & 0x3ff) : 0x7c00);
  if (abs >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                       // below the smallest normal half: subnormal or 0
    if (abs < 0x33000000u) return sign;          // < 2^-25: rounds to zero
    const uint32_t exponent = abs >> 23;
    const uint32_t mantissa = (abs & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - exponent;  // 14..24
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1))) ++half;
    return sign | uint16_t(half);
  }
  uint32_t half = ((abs >> 13) - (112u << 10));
  const uint32_t rest = abs & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) ++half;  // may carry into the exponent
  return sign | uint16_t(half);
}

inline float bf16_to_f32(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

// Round to nearest, ties to even; nan stays nan (quiet).
inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

}  // namespace shrink
