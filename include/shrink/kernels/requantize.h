// The u8 activations of the static int8 region: the rounding every variant shares, and the
// requantizing residual add (QuantAdd's kernel).
#pragma once
#include <algorithm>
#include <cstdint>

namespace shrink {

// clamp(nearbyint(x * inverse_scale) + zero, 0, max) without a libm call, so loops of it vectorise:
// clamping first keeps |t| < 2^22, where adding and subtracting 1.5 * 2^23 rounds to nearest even
// exactly as nearbyint does in the default rounding mode (the project never enables -ffast-math,
// which could fold it away). FakeQuantize's nearbyint therefore lands on the same grid.
constexpr float kRoundingMagic = 12582912.f;  // 1.5 * 2^23
inline uint8_t requantize_u8(float x, float inverse_scale, float zero, float max) {
  const float t = std::clamp(x * inverse_scale, -1.f - zero, max + 1.f - zero);
  return uint8_t(std::clamp((t + kRoundingMagic) - kRoundingMagic + zero, 0.f, max));
}

// y[i] = requantize_u8(max(a_scale * a[i] + b_scale * b[i] + offset, low), ...): the sum of two u8
// tensors dequantized (offset = -(a_zero * a_scale + b_zero * b_scale)), low = 0 for a fused ReLU
// or -infinity, written with the output's qparams. Evaluated in this order, in f32, unfused.
struct AddU8Params {
  float a_scale, b_scale, offset, low, inverse_scale, zero, max;
};
using AddU8Fn = void (*)(const uint8_t* a, const uint8_t* b, int64_t n, const AddU8Params& p, uint8_t* y);

}  // namespace shrink
