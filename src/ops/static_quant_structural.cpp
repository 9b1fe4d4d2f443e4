// The int8 region's concatenation and adaptive average pooling (see static_quant_ops.cpp for the
// region's conventions: u8 in [0, 127] per tensor, images channels-last (N, H, W, C)).
//   QuantConcat: u8 inputs, each with its own qparams (input_scales, input_zeros: one per input)
//     -> u8 with output_scale/zero, joined along `axis` of the stored layout (the converter maps
//     NCHW's channel axis 1 to 3). Each input is requantized through a 256-entry table (a plain
//     copy when its qparams are the output's).
//   QuantAdaptiveAvgPool2d: u8 (N, H, W, C) -> u8 (N, OH, OW, C), output_size as AdaptiveAvgPool2d
//     (window [floor(i*H/OH), ceil((i+1)*H/OH))), input_scale/zero, output_scale/zero: the integer
//     sum of each window, its mean dequantized and requantized once.
// Inference only.
#include <array>

#include "ops/op_support.h"
#include "ops/static_quant_support.h"
#include "shrink/core/parallel.h"

namespace shrink::nn::ops {
namespace {

// ---- QuantConcat

std::vector<ActivationQParams> input_qparams(const Node& node, size_t count) {
  const auto scales = node.attrs.find("input_scales"), zeros = node.attrs.find("input_zeros");
  if (scales == node.attrs.end() || zeros == node.attrs.end() || !scales->is_array() || !zeros->is_array() ||
      scales->size() != count || zeros->size() != count)
    fail(node, "needs input_scales and input_zeros, one per input");
  std::vector<ActivationQParams> q;
  for (size_t i = 0; i < count; ++i) {
    Node one{node.name, node.kind, {{"scale", (*scales)[i]}, {"zero", (*zeros)[i]}}, {}, {}, {}};
    q.push_back(qparams_attr(one, ""));
  }
  return q;
}

std::vector<ValueInfo> concat_infer(const Node& node, std::span<const ValueInfo> in) {
  if (in.empty()) fail(node, "needs at least one input");
  input_qparams(node, in.size());
  qparams_attr(node, "output_");
  Shape shape = in[0].shape;
  const int64_t axis = attr_int(node, "axis", -1);
  if (axis < 0 || axis >= shape.rank()) fail(node, "axis must be a dimension of the inputs (non-negative)");
  for (size_t i = 0; i < in.size(); ++i) {
    expect_u8(node, in[i], "every input");
    if (in[i].shape.rank() != shape.rank()) fail(node, "inputs differ in rank");
    if (i == 0) continue;
    for (int d = 0; d < shape.rank(); ++d)
      if (d == axis)
        shape[d] = shape[d] < 0 || in[i].shape[d] < 0 ? -1 : shape[d] + in[i].shape[d];
      else if (!dims_compatible(shape[d], in[i].shape[d]))
        fail(node, fmt::format("inputs differ in dimension {}", d));
  }
  return {{shape, DType::u8}};
}

void concat_forward(ForwardContext& c) {
  const int64_t axis = attr_int(c.node, "axis", -1);
  const std::vector<ActivationQParams> in_q = input_qparams(c.node, c.inputs.size());
  const ActivationQParams out_q = qparams_attr(c.node, "output_");
  std::vector<Tensor> parts;
  for (const Tensor& t : c.inputs) parts.push_back(t.contiguous());
  Shape shape = parts[0].shape();
  shape[int(axis)] = 0;
  for (const Tensor& p : parts) shape[int(axis)] += p.shape()[int(axis)];
  Tensor y = Tensor::uninitialized(shape, DType::u8);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < int(axis); ++d) outer *= shape[d];
  for (int d = int(axis) + 1; d < shape.rank(); ++d) inner *= shape[d];
  const int64_t whole_row = shape[int(axis)] * inner;
  uint8_t* out = y.mutable_data<uint8_t>();
  int64_t offset = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    std::array<uint8_t, 256> table;
    for (int v = 0; v < 256; ++v)
      table[size_t(v)] = quantize_value(float(v - in_q[i].zero) * in_q[i].scale, 1.f / out_q.scale, float(out_q.zero));
    const bool same = in_q[i].scale == out_q.scale && in_q[i].zero == out_q.zero;
    const int64_t row = parts[i].shape()[int(axis)] * inner;
    const uint8_t* in = parts[i].data<uint8_t>();
    parallel_for(0, outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(row, 1)), [&](int64_t first, int64_t last) {
      for (int64_t o = first; o < last; ++o) {
        const uint8_t* from = in + o * row;
        uint8_t* to = out + o * whole_row + offset;
        if (same) std::copy(from, from + row, to);
        else
          for (int64_t j = 0; j < row; ++j) to[j] = table[from[j]];
      }
    });
    offset += row;
  }
  c.outputs[0] = y;
}

// ---- QuantAdaptiveAvgPool2d

std::pair<int64_t, int64_t> output_size(const Node& node) {
  const auto [oh, ow] = attr_pair(node, "output_size", -1);
  if (oh <= 0 || ow <= 0) fail(node, "needs a positive output_size");
  return {oh, ow};
}

std::vector<ValueInfo> pool_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_u8(node, in[0], "input");
  expect_rank(node, in[0], 4, "input (N, H, W, C)");
  qparams_attr(node, "input_");
  qparams_attr(node, "output_");
  const auto [oh, ow] = output_size(node);
  const Shape& s = in[0].shape;
  return {{Shape{s[0], oh, ow, s[3]}, DType::u8}};
}

void pool_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const auto size = output_size(c.node);
  const int64_t oh = size.first, ow = size.second;  // not a structured binding: lambdas capture it (clang < 16)
  const ActivationQParams in_q = qparams_attr(c.node, "input_"), out_q = qparams_attr(c.node, "output_");
  const int64_t n = x.shape()[0], h = x.shape()[1], w = x.shape()[2], ch = x.shape()[3];
  if (h <= 0 || w <= 0) fail(c.node, "the input has no positions to pool");
  Tensor y = Tensor::uninitialized(Shape{n, oh, ow, ch}, DType::u8);
  const uint8_t* in = x.data<uint8_t>();
  uint8_t* out = y.mutable_data<uint8_t>();
  const float inverse = 1.f / out_q.scale;
  parallel_for(0, n * oh * ow, 1, [&](int64_t first, int64_t last) {
    std::vector<int32_t> sums(static_cast<size_t>(ch));
    for (int64_t task = first; task < last; ++task) {
      const int64_t b = task / (oh * ow), oy = task / ow % oh, ox = task % ow;
      const int64_t y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh, x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
      std::fill(sums.begin(), sums.end(), 0);
      for (int64_t yy = y0; yy < y1; ++yy)
        for (int64_t xx = x0; xx < x1; ++xx) {
          const uint8_t* pixel = in + ((b * h + yy) * w + xx) * ch;
          for (int64_t k = 0; k < ch; ++k) sums[size_t(k)] += pixel[k];
        }
      const float count = float((y1 - y0) * (x1 - x0));
      uint8_t* to = out + task * ch;
      for (int64_t k = 0; k < ch; ++k)
        to[k] = quantize_value((float(sums[size_t(k)]) / count - float(in_q.zero)) * in_q.scale, inverse, float(out_q.zero));
    }
  });
  c.outputs[0] = y;
}

}  // namespace

extern const OpRules quant_concat_rules{"QuantConcat", concat_infer, concat_forward, nullptr};
extern const OpRules quant_adaptive_avg_pool2d_rules{"QuantAdaptiveAvgPool2d", pool_infer, pool_forward, nullptr};

}  // namespace shrink::nn::ops
