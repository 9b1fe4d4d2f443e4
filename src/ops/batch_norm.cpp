// BatchNorm over channel axis 1: x (N, C) or (N, C, L) for BatchNorm1d, (N, C, H, W) for
// BatchNorm2d. Training normalises with the batch statistics (biased variance) and updates the
// running ones with momentum (unbiased variance), as PyTorch does; eval uses the running ones.
// Parameters weight, bias (C); buffers running_mean, running_var (C).
#include <cmath>

#include "ops/op_support.h"
#include "shrink/core/parallel.h"

namespace shrink::nn::ops {
namespace {

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  int rank = in[0].shape.rank();
  bool two_d = node.kind == "BatchNorm2d";
  if (two_d ? rank != 4 : (rank != 2 && rank != 3))
    fail(node, fmt::format("input must be {}, got shape {}", two_d ? "(N, C, H, W)" : "(N, C) or (N, C, L)",
                           in[0].shape.to_string()));
  int64_t channels = attr_int(node, "num_features", -1);
  if (channels <= 0) fail(node, "needs num_features > 0");
  expect_dim(node, in[0].shape[1], channels, "input channels");
  for (const char* name : {"weight", "bias", "running_mean", "running_var"})
    expect_param(node, name, Shape{channels});
  return {in[0]};
}

struct Layout {
  int64_t n, c, inner;  // x viewed as (n, c, inner)
  int64_t count() const { return n * inner; }
};
Layout layout(const Tensor& x) {
  Layout l{x.shape()[0], x.shape()[1], 1};
  for (int axis = 2; axis < x.rank(); ++axis) l.inner *= x.shape()[axis];
  return l;
}

void forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  Layout l = layout(x);
  double eps = attr_float(c.node, "eps", 1e-5), momentum = attr_float(c.node, "momentum", 0.1);
  const float* w = f32(c.node.param("weight").value);
  const float* b = f32(c.node.param("bias").value);
  float* running_mean = f32(c.node.param("running_mean").value);
  float* running_var = f32(c.node.param("running_var").value);
  Tensor mean = new_f32(Shape{l.c}), inv_std = new_f32(Shape{l.c});
  const float* xd = f32(x);
  parallel_for(0, l.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      double m, var;
      if (c.training) {
        // Float sums within a row (they vectorise), double across rows.
        double sum = 0, sq = 0;
        for (int64_t n = 0; n < l.n; ++n) {
          const float* row = xd + (n * l.c + ch) * l.inner;
          float part = 0.f;
#pragma omp simd reduction(+ : part)
          for (int64_t i = 0; i < l.inner; ++i) part += row[i];
          sum += part;
        }
        m = sum / double(l.count());
        for (int64_t n = 0; n < l.n; ++n) {
          const float* row = xd + (n * l.c + ch) * l.inner;
          float part = 0.f, mf = float(m);
#pragma omp simd reduction(+ : part)
          for (int64_t i = 0; i < l.inner; ++i) part += (row[i] - mf) * (row[i] - mf);
          sq += part;
        }
        var = sq / double(l.count());
        double unbiased = l.count() > 1 ? sq / double(l.count() - 1) : var;
        running_mean[ch] = float((1 - momentum) * running_mean[ch] + momentum * m);
        running_var[ch] = float((1 - momentum) * running_var[ch] + momentum * unbiased);
      } else {
        m = running_mean[ch];
        var = running_var[ch];
      }
      f32(mean)[ch] = float(m);
      f32(inv_std)[ch] = float(1.0 / std::sqrt(var + eps));
    }
  });
  Tensor y = uninitialized_like(x);
  float* yd = f32(y);
  parallel_for(0, l.n * l.c, 4, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      int64_t ch = index % l.c;
      float scale = f32(inv_std)[ch] * w[ch], shift = b[ch] - f32(mean)[ch] * scale;
      const float* src = xd + index * l.inner;
      float* dst = yd + index * l.inner;
      for (int64_t i = 0; i < l.inner; ++i) dst[i] = src[i] * scale + shift;
    }
  });
  c.outputs[0] = y;
  if (c.record) c.saved = {mean, inv_std, Tensor::empty(Shape{c.training ? 1 : 0}, DType::u8)};
}

void backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor x = c.inputs[0].contiguous(), dy = c.grad_outputs[0].contiguous();
  Layout l = layout(x);
  const float* w = f32(c.node.param("weight").value);
  const float *mean = f32(c.saved.at(0)), *inv_std = f32(c.saved.at(1));
  bool batch_statistics = c.saved.at(2).numel() == 1;
  Tensor dx = new_like(x), dw = new_f32(Shape{l.c}), db = new_f32(Shape{l.c});
  const float *xd = f32(x), *g = f32(dy);
  float* out = f32(dx);
  parallel_for(0, l.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      double sum_g = 0, sum_gx = 0;
      for (int64_t n = 0; n < l.n; ++n) {
        int64_t base = (n * l.c + ch) * l.inner;
        float part_g = 0.f, part_gx = 0.f;
#pragma omp simd reduction(+ : part_g, part_gx)
        for (int64_t i = 0; i < l.inner; ++i) {
          float xhat = (xd[base + i] - mean[ch]) * inv_std[ch];
          part_g += g[base + i];
          part_gx += g[base + i] * xhat;
        }
        sum_g += part_g;
        sum_gx += part_gx;
      }
      f32(dw)[ch] = float(sum_gx);
      f32(db)[ch] = float(sum_g);
      double k = w[ch] * inv_std[ch], count = double(l.count());
      float mean_g = float(sum_g / count), mean_gx = float(sum_gx / count);
      for (int64_t n = 0; n < l.n; ++n) {
        int64_t base = (n * l.c + ch) * l.inner;
        for (int64_t i = 0; i < l.inner; ++i) {
          if (!batch_statistics) {
            out[base + i] = g[base + i] * float(k);
            continue;
          }
          float xhat = (xd[base + i] - mean[ch]) * inv_std[ch];
          out[base + i] = float(k) * (g[base + i] - mean_g - xhat * mean_gx);
        }
      }
    }
  });
  c.grad_inputs[0] = dx;
  set_param_grad(c, "weight", dw);
  set_param_grad(c, "bias", db);
}

}  // namespace

extern const OpRules batch_norm1d_rules{"BatchNorm1d", infer, forward, backward};
extern const OpRules batch_norm2d_rules{"BatchNorm2d", infer, forward, backward};

}  // namespace shrink::nn::ops
