// Helpers shared by the int8-region ops (static_quant_ops.cpp, static_quant_structural.cpp):
// activation qparams read from attributes, and the u8 quantizer their epilogues use.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>

#include "ops/op_support.h"
#include "shrink/kernels/requantize.h"

namespace shrink::nn::ops {

constexpr float kActivationMax = 127.f;

struct ActivationQParams {
  float scale = 1.f;
  int32_t zero = 0;
};
inline ActivationQParams qparams_attr(const Node& node, const std::string& prefix) {
  const double scale = attr_float(node, (prefix + "scale").c_str(), -1);
  const int64_t zero = attr_int(node, (prefix + "zero").c_str(), -1);
  if (!(scale > 0) || !std::isfinite(scale)) fail(node, fmt::format("needs a positive {}scale", prefix));
  if (zero < 0 || zero > 127) fail(node, fmt::format("{}zero must be in [0, 127]", prefix));
  return {float(scale), int32_t(zero)};
}

inline void expect_u8(const Node& node, const ValueInfo& info, const char* what) {
  if (info.dtype != DType::u8) fail(node, fmt::format("{} must be u8, got {}", what, dtype_name(info.dtype)));
}

// clamp(nearbyint(x * inverse_scale) + zero, 0, 127), the rounding every int8-region op and the
// kernels share (shrink/kernels/requantize.h).
inline uint8_t quantize_value(float x, float inverse_scale, float zero) {
  return requantize_u8(x, inverse_scale, zero, kActivationMax);
}

}  // namespace shrink::nn::ops
