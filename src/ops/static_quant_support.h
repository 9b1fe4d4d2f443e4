// Helpers shared by the int8-region ops (static_quant_ops.cpp, static_quant_structural.cpp):
// activation qparams read from attributes, and the u8 quantizer their epilogues use.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>

#include "ops/op_support.h"
#include "shrink/kernels/requantize.h"
#include "shrink/quant/int8_linear.h"

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

// A quantized layer's int8 weights (params weight i8 and weight_scale f32 (OC)) packed for the
// kernels, one matrix per group (rows = the group's output channels), built once per node. The
// columns of a convolution's (OC, C/groups, KH, KW) weights: (KH, KW, C/groups) when
// `channels_last` (the int8 region's NHWC im2col), else (C/groups, KH, KW) as stored.
using PackedGroups = std::vector<PackedInt8Matrix>;
const PackedGroups& packed_int8_groups(Node& node, int64_t groups, bool channels_last);

}  // namespace shrink::nn::ops
