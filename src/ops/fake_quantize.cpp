// FakeQuantize: quantization-aware training's activation node. x -> (clamp(round(x / s) + z, 0,
// 127) - z) s with u8 [0, 127] qparams (those of the static int8 region, so a converted model
// computes on the same grid) from a moving-average min/max kept in the buffer `range` [min, max]
// (min > max until the first observation). Attributes: observe (update the range in training
// mode; a schedule switches it off to freeze the observer), enabled (else the identity),
// averaging (PyTorch's MovingAverageMinMaxObserver constant, 0.01). Backward: the straight-through
// estimator, zero where x fell outside the representable range.
#include <algorithm>
#include <cmath>

#include "ops/op_support.h"
#include "shrink/core/parallel.h"
#include "shrink/quant/int8_linear.h"

namespace shrink::nn::ops {
namespace {

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  expect_param(node, "range", Shape{2});
  attr_bool(node, "observe", true);
  attr_bool(node, "enabled", true);
  const double c = attr_float(node, "averaging", 0.01);
  if (!(c > 0 && c <= 1)) fail(node, "averaging must be in (0, 1]");
  return {in[0]};
}

bool has_range(const Node& node) {
  const float* r = node.param("range").value.data<float>();
  return r[0] <= r[1];
}

U8QParams node_qparams(const Node& node) {
  const float* r = node.param("range").value.data<float>();
  return u8_activation_qparams(r[0], r[1]);
}

void forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const float* in = f32(x);
  const int64_t n = x.numel();
  if (c.training && attr_bool(c.node, "observe", true) && n > 0) {
    float lo = in[0], hi = in[0];
    for (int64_t i = 0; i < n; ++i)
      if (std::isfinite(in[i])) lo = std::min(lo, in[i]), hi = std::max(hi, in[i]);
    Tensor& range = c.node.param("range").value;
    if (!range.writable()) range = range.clone();
    float* r = range.mutable_data<float>();
    if (r[0] > r[1]) {
      r[0] = lo, r[1] = hi;
    } else {
      const float k = float(attr_float(c.node, "averaging", 0.01));
      r[0] += k * (lo - r[0]);
      r[1] += k * (hi - r[1]);
    }
  }
  if (!attr_bool(c.node, "enabled", true) || !has_range(c.node)) {
    c.outputs[0] = c.inputs[0];
    return;
  }
  const U8QParams q = node_qparams(c.node);
  const float inverse = 1.f / q.scale, zero = float(q.zero);
  Tensor y = uninitialized_f32(x.shape());
  float* out = f32(y);
  const float scale = q.scale;
  parallel_for(0, n, 16384, [=](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i)
      out[i] = (std::clamp(std::nearbyint(in[i] * inverse) + zero, 0.f, 127.f) - zero) * scale;
  });
  c.outputs[0] = y;
}

void backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  if (!attr_bool(c.node, "enabled", true) || !has_range(c.node)) {
    c.grad_inputs[0] = c.grad_outputs[0];
    return;
  }
  const U8QParams q = node_qparams(c.node);
  const float inverse = 1.f / q.scale, zero = float(q.zero);
  const Tensor x = c.inputs[0].contiguous(), g = c.grad_outputs[0].contiguous();
  Tensor dx = uninitialized_like(g);
  const float *in = f32(x), *grad = f32(g);
  float* out = f32(dx);
  parallel_for(0, x.numel(), 16384, [=](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      const float grid = std::nearbyint(in[i] * inverse) + zero;
      out[i] = grid >= 0.f && grid <= 127.f ? grad[i] : 0.f;
    }
  });
  c.grad_inputs[0] = dx;
}

}  // namespace

extern const OpRules fake_quantize_rules{"FakeQuantize", infer, forward, backward};

}  // namespace shrink::nn::ops
