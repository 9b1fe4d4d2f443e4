// Ops over the last axis of x (..., D): Softmax, LayerNorm (weight, bias (D); eps) and RMSNorm
// (weight (D); eps), each row independent.
#include <cmath>

#include "ops/op_support.h"
#include "ops/row_kernels.h"
#include "shrink/core/parallel.h"

namespace shrink::nn::ops {
namespace {

int64_t last_dim(const Shape& s) { return s[s.rank() - 1]; }

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  if (in[0].shape.rank() < 1) fail(node, "input needs at least one dimension");
  if (node.kind == "Softmax") {
    int64_t axis = attr_int(node, "axis", -1);
    if (axis != -1 && axis != in[0].shape.rank() - 1) fail(node, "only the last axis is supported");
    return {in[0]};
  }
  int64_t d = attr_int(node, "normalized_shape", -1);
  if (d <= 0) fail(node, "needs normalized_shape > 0");
  expect_dim(node, last_dim(in[0].shape), d, "input's last dimension");
  expect_param(node, "weight", Shape{d});
  if (node.kind == "LayerNorm") expect_param(node, "bias", Shape{d});
  return {in[0]};
}

template <class Row> void for_rows(const Tensor& x, Row row) {
  int64_t d = last_dim(x.shape()), rows = x.numel() / std::max<int64_t>(d, 1);
  parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) row(r * d, d);
  });
}

void softmax_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  Tensor y = new_like(x);
  for_rows(x, [&](int64_t base, int64_t d) {
    const float* in = f32(x) + base;
    float* out = f32(y) + base;
    float top = *std::max_element(in, in + d);
    double sum = 0;
    for (int64_t i = 0; i < d; ++i) sum += out[i] = std::exp(in[i] - top);
    float inv = float(1.0 / sum);
    for (int64_t i = 0; i < d; ++i) out[i] *= inv;
  });
  c.outputs[0] = y;
}
void softmax_backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor& y = c.outputs[0];
  const Tensor g = c.grad_outputs[0].contiguous();
  Tensor dx = new_like(y);
  for_rows(y, [&](int64_t base, int64_t d) {
    const float *yr = f32(y) + base, *gr = f32(g) + base;
    double dot = 0;
    for (int64_t i = 0; i < d; ++i) dot += double(yr[i]) * gr[i];
    for (int64_t i = 0; i < d; ++i) f32(dx)[base + i] = yr[i] * float(gr[i] - dot);
  });
  c.grad_inputs[0] = dx;
}

// sum_i f(x[i]) in double with four running sums (one chain of dependent adds made a norm of a
// 576-wide row cost ~2 us, a tenth of a decoded token's per-layer work outside the products).
template <class F> double sum4(const float* x, int64_t n, F f) {
  double s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int lane = 0; lane < 4; ++lane) s[lane] += f(double(x[i + lane]));
  for (; i < n; ++i) s[0] += f(double(x[i]));
  return (s[0] + s[1]) + (s[2] + s[3]);
}

}  // namespace

NormStats norm_row(const float* x, int64_t d, const float* w, const float* b, bool layer_norm, float eps, float* out) {
  double mean = 0;
  if (layer_norm) {
    mean = sum4(x, d, [](double v) { return v; });
    mean /= double(d);
  }
  const double sq = sum4(x, d, [mean](double v) { return (v - mean) * (v - mean); });
  const float inv = float(1.0 / std::sqrt(sq / double(d) + eps));
  for (int64_t i = 0; i < d; ++i) out[i] = (x[i] - float(mean)) * inv * w[i] + (b ? b[i] : 0.f);
  return {float(mean), inv};
}

namespace {

// Saved per row: mean (0 for RMSNorm) and 1/std (1/rms).
void norm_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  bool layer_norm = c.node.kind == "LayerNorm";
  float eps = float(attr_float(c.node, "eps", layer_norm ? 1e-5 : 1e-6));
  const float* w = f32(c.node.param("weight").value);
  const float* b = layer_norm ? f32(c.node.param("bias").value) : nullptr;
  int64_t d = last_dim(x.shape()), rows = x.numel() / d;
  // Every output value is written; the statistics only when training records them.
  Tensor y = uninitialized_like(x), stats = c.record ? uninitialized_f32(Shape{rows, 2}) : Tensor();
  for_rows(x, [&](int64_t base, int64_t dd) {
    const NormStats row = norm_row(f32(x) + base, dd, w, b, layer_norm, eps, f32(y) + base);
    if (c.record) {
      f32(stats)[base / dd * 2] = row.mean;
      f32(stats)[base / dd * 2 + 1] = row.inv;
    }
  });
  c.outputs[0] = y;
  if (c.record) c.saved = {stats};
}
void norm_backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor x = c.inputs[0].contiguous(), g = c.grad_outputs[0].contiguous();
  bool layer_norm = c.node.kind == "LayerNorm";
  const float* w = f32(c.node.param("weight").value);
  const float* stats = f32(c.saved.at(0));
  int64_t d = last_dim(x.shape()), rows = x.numel() / d;
  Tensor dx = new_like(x), dw = new_f32(Shape{d}), db = new_f32(Shape{d});
  for (int64_t r = 0; r < rows; ++r) {  // serial: parameter gradients accumulate over rows
    const float *in = f32(x) + r * d, *gr = f32(g) + r * d;
    float mean = stats[2 * r], inv = stats[2 * r + 1];
    double sum_gw = 0, sum_gwx = 0;
    for (int64_t i = 0; i < d; ++i) {
      float xhat = (in[i] - mean) * inv;
      f32(dw)[i] += gr[i] * xhat;
      f32(db)[i] += gr[i];
      sum_gw += gr[i] * w[i];
      sum_gwx += double(gr[i]) * w[i] * xhat;
    }
    for (int64_t i = 0; i < d; ++i) {
      float xhat = (in[i] - mean) * inv;
      double centred = layer_norm ? sum_gw / double(d) : 0.0;
      f32(dx)[r * d + i] = float(inv * (gr[i] * w[i] - centred - xhat * sum_gwx / double(d)));
    }
  }
  c.grad_inputs[0] = dx;
  set_param_grad(c, "weight", dw);
  set_param_grad(c, "bias", db);
}

}  // namespace

extern const OpRules softmax_rules{"Softmax", infer, softmax_forward, softmax_backward};
extern const OpRules layer_norm_rules{"LayerNorm", infer, norm_forward, norm_backward};
extern const OpRules rms_norm_rules{"RMSNorm", infer, norm_forward, norm_backward};

}  // namespace shrink::nn::ops
