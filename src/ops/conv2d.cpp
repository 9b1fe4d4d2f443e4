// Conv2d over NCHW: x (N, C, H, W) -> y (N, OC, OH, OW), weight (OC, C/groups, KH, KW), bias (OC)
// optional; stride, padding, dilation and groups (depthwise when groups == C). Batched im2col
// (col (C*KH*KW, N*OH*OW)) and one GEMM per group; backward is the transposed GEMMs and col2im.
#include "ops/op_support.h"
#include "shrink/core/parallel.h"

namespace shrink::nn::ops {
namespace {

struct ConvGeometry {
  int64_t n, c, h, w, oc, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, groups;
  int64_t plane() const { return oh * ow; }
  int64_t col_rows() const { return c * kh * kw; }
  int64_t col_cols() const { return n * oh * ow; }
};

int64_t out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  if (in < 0) return -1;
  return (in + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
}

ConvGeometry geometry(const Node& node, const Shape& x) {
  ConvGeometry g{};
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.oc = attr_int(node, "out_channels", -1);
  std::tie(g.kh, g.kw) = attr_pair(node, "kernel_size", -1);
  std::tie(g.sh, g.sw) = attr_pair(node, "stride", 1);
  std::tie(g.ph, g.pw) = attr_pair(node, "padding", 0);
  std::tie(g.dh, g.dw) = attr_pair(node, "dilation", 1);
  g.groups = attr_int(node, "groups", 1);
  g.oh = out_size(g.h, g.kh, g.sh, g.ph, g.dh);
  g.ow = out_size(g.w, g.kw, g.sw, g.pw, g.dw);
  return g;
}

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  expect_rank(node, in[0], 4, "input (N, C, H, W)");
  ConvGeometry g = geometry(node, in[0].shape);
  int64_t channels = attr_int(node, "in_channels", -1);
  if (channels <= 0 || g.oc <= 0 || g.kh <= 0 || g.kw <= 0 || g.sh <= 0 || g.sw <= 0 ||
      g.ph < 0 || g.pw < 0 || g.dh <= 0 || g.dw <= 0 || g.groups <= 0)
    fail(node, "needs positive channels, kernel_size, stride, dilation, groups and padding >= 0");
  if (channels % g.groups || g.oc % g.groups)
    fail(node, fmt::format("groups {} must divide in_channels {} and out_channels {}", g.groups,
                           channels, g.oc));
  expect_dim(node, g.c, channels, "input channels");
  if ((g.h >= 0 && g.oh <= 0) || (g.w >= 0 && g.ow <= 0))
    fail(node, fmt::format("input {}x{} is smaller than the dilated kernel", g.h, g.w));
  expect_param(node, "weight", Shape{g.oc, channels / g.groups, g.kh, g.kw});
  if (node.find_param("bias")) expect_param(node, "bias", Shape{g.oc});
  return {{Shape{g.n, g.oc, g.oh, g.ow}, DType::f32}};
}

// col[(c*KH + i)*KW + j][n*P + oy*OW + ox] = x[n, c, oy*sh - ph + i*dh, ox*sw - pw + j*dw] or 0.
void im2col(const ConvGeometry& g, const float* x, float* col) {
  parallel_for(0, g.col_rows(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      int64_t c = row / (g.kh * g.kw), i = row / g.kw % g.kh, j = row % g.kw;
      float* out = col + row * g.col_cols();
      for (int64_t n = 0; n < g.n; ++n) {
        const float* plane = x + (n * g.c + c) * g.h * g.w;
        for (int64_t oy = 0; oy < g.oh; ++oy, out += g.ow) {
          int64_t iy = oy * g.sh - g.ph + i * g.dh;
          if (iy < 0 || iy >= g.h) {
            std::fill(out, out + g.ow, 0.f);
            continue;
          }
          for (int64_t ox = 0; ox < g.ow; ++ox) {
            int64_t ix = ox * g.sw - g.pw + j * g.dw;
            out[ox] = ix >= 0 && ix < g.w ? plane[iy * g.w + ix] : 0.f;
          }
        }
      }
    }
  });
}

// The adjoint of im2col: dx[n, c, y, x] += every col entry that copied it.
void col2im(const ConvGeometry& g, const float* col, float* dx) {
  parallel_for(0, g.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) {
          const float* in = col + ((c * g.kh + i) * g.kw + j) * g.col_cols();
          for (int64_t n = 0; n < g.n; ++n) {
            float* plane = dx + (n * g.c + c) * g.h * g.w;
            for (int64_t oy = 0; oy < g.oh; ++oy, in += g.ow) {
              int64_t iy = oy * g.sh - g.ph + i * g.dh;
              if (iy < 0 || iy >= g.h) continue;
              for (int64_t ox = 0; ox < g.ow; ++ox) {
                int64_t ix = ox * g.sw - g.pw + j * g.dw;
                if (ix >= 0 && ix < g.w) plane[iy * g.w + ix] += in[ox];
              }
            }
          }
        }
  });
}

void forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  ConvGeometry g = geometry(c.node, x.shape());
  const Tensor& w = c.node.param("weight").value;
  Tensor col = new_f32(Shape{g.col_rows(), g.col_cols()});
  im2col(g, f32(x), f32(col));
  // y2 (OC, N*P): one GEMM per group over that group's rows of col and of the weight.
  Tensor y2 = new_f32(Shape{g.oc, g.col_cols()});
  int64_t ocg = g.oc / g.groups, kg = g.col_rows() / g.groups;
  for (int64_t grp = 0; grp < g.groups; ++grp)
    gemm(false, false, ocg, g.col_cols(), kg, f32(w) + grp * ocg * kg, kg,
         f32(col) + grp * kg * g.col_cols(), g.col_cols(), 0.f,
         f32(y2) + grp * ocg * g.col_cols(), g.col_cols());
  Tensor y = new_f32(Shape{g.n, g.oc, g.oh, g.ow});
  const Param* bias = c.node.find_param("bias");
  const float* yd2 = f32(y2);
  float* yd = f32(y);
  int64_t p = g.plane();
  parallel_for(0, g.n * g.oc, 4, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      int64_t n = index / g.oc, o = index % g.oc;
      float b = bias ? f32(bias->value)[o] : 0.f;
      const float* src = yd2 + o * g.col_cols() + n * p;
      float* dst = yd + index * p;
      for (int64_t q = 0; q < p; ++q) dst[q] = src[q] + b;
    }
  });
  c.outputs[0] = y;
  if (c.record) c.saved = {col};
}

void backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor& x = c.inputs[0];
  ConvGeometry g = geometry(c.node, x.shape());
  const Tensor& w = c.node.param("weight").value;
  const Tensor& col = c.saved.at(0);
  const Tensor dy = c.grad_outputs[0].contiguous();
  // dy2 (OC, N*P) from dy (N, OC, P).
  Tensor dy2 = new_f32(Shape{g.oc, g.col_cols()});
  int64_t p = g.plane();
  const float* dyd = f32(dy);
  float* dy2d = f32(dy2);
  parallel_for(0, g.n * g.oc, 4, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      int64_t n = index / g.oc, o = index % g.oc;
      std::copy(dyd + index * p, dyd + (index + 1) * p, dy2d + o * g.col_cols() + n * p);
    }
  });
  Tensor dw = new_like(w), dcol = new_f32(Shape{g.col_rows(), g.col_cols()});
  int64_t ocg = g.oc / g.groups, kg = g.col_rows() / g.groups;
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const float* dyg = dy2d + grp * ocg * g.col_cols();
    const float* colg = f32(col) + grp * kg * g.col_cols();
    gemm(false, true, ocg, kg, g.col_cols(), dyg, g.col_cols(), colg, g.col_cols(), 0.f,
         f32(dw) + grp * ocg * kg, kg);
    gemm(true, false, kg, g.col_cols(), ocg, f32(w) + grp * ocg * kg, kg, dyg, g.col_cols(), 0.f,
         f32(dcol) + grp * kg * g.col_cols(), g.col_cols());
  }
  Tensor dx = new_f32(x.shape());
  col2im(g, f32(dcol), f32(dx));
  c.grad_inputs[0] = dx;
  for (size_t i = 0; i < c.node.params.size(); ++i) {
    if (c.node.params[i].name == "weight") c.grad_params[i] = dw;
    if (c.node.params[i].name == "bias") {
      Tensor db = new_f32(Shape{g.oc});
      for (int64_t o = 0; o < g.oc; ++o) {
        double sum = 0;
        for (int64_t q = 0; q < g.col_cols(); ++q) sum += dy2d[o * g.col_cols() + q];
        f32(db)[o] = float(sum);
      }
      c.grad_params[i] = db;
    }
  }
}

}  // namespace

extern const OpRules conv2d_rules{"Conv2d", infer, forward, backward};

}  // namespace shrink::nn::ops
