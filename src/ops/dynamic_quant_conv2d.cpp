// DynamicQuantConv2d: Conv2d (x f32 NCHW -> y f32 NCHW, the same attributes) with per-channel
// int8 weights (weight i8 (OC, C/groups, KH, KW), weight_scale f32 (OC), bias f32 (OC) optional)
// and activations quantized at run time per output position: each receptive field (one im2col
// row of C/groups * KH * KW inputs) gets its own u8 range, as DynamicQuantLinear quantizes each
// row of its input. The rows are gathered from a channels-last copy of the input, where a tap's
// channels (and with one group a kernel row's taps) are contiguous: from NCHW, a 3 x 3
// convolution's rows were 3-value pieces, and the gathering made it slower than f32. No calibration: a raw waveform's frames keep their own scale, where the
// static int8 region's one scale per tensor had cost Silero VAD most of its agreement.
// Inference only.
#include <algorithm>
#include <memory>
#include <vector>

#include "ops/op_support.h"
#include "ops/static_quant_support.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/registry.h"

namespace shrink::nn::ops {
namespace {

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  expect_rank(node, in[0], 4, "input (N, C, H, W)");
  const Shape& x = in[0].shape;
  const ConvAttrs a = conv_attrs(node, x[1], x[2], x[3], DType::i8);
  expect_param(node, "weight_scale", Shape{a.oc});
  return {{Shape{x[0], a.oc, a.out_h(x[2]), a.out_w(x[3])}, DType::f32}};
}

struct Geometry {
  ConvAttrs a;
  int64_t h, w, oh, ow, positions, cg, ocg, k;
};

// The input channels-last, (N, H, W, C), so that each kernel tap's channels are contiguous.
std::unique_ptr<float[]> channels_last(const Geometry& g, const float* x, int64_t n) {
  const int64_t c = g.a.c;
  std::unique_ptr<float[]> out(new float[size_t(n * g.h * g.w * c)]);
  parallel_for(0, n * g.h, std::max<int64_t>(1, 16384 / (g.w * c)), [&](int64_t lo, int64_t hi) {
    for (int64_t line = lo; line < hi; ++line) {
      const int64_t image = line / g.h, iy = line % g.h;
      float* to = out.get() + line * g.w * c;
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* from = x + ((image * c + ch) * g.h + iy) * g.w;
        for (int64_t ix = 0; ix < g.w; ++ix) to[ix * c + ch] = from[ix];
      }
    }
  });
  return out;
}

// Row r of the batch's im2col (r = (image, oy, ox)) for one group from the channels-last input,
// columns in (ky, kx, channel) order; taps outside the image are 0.
void im2row(const Geometry& g, const float* nhwc, int64_t group, int64_t r, float* row) {
  const ConvAttrs& a = g.a;
  const int64_t image = r / g.positions, oy = r % g.positions / g.ow, ox = r % g.ow;
  const int64_t ix0 = ox * a.sw - a.pw;
  // With one group and no dilation a kernel row's taps are kw * C contiguous input values.
  const bool whole_rows = a.groups == 1 && a.dw == 1 && ix0 >= 0 && ix0 + a.kw <= g.w;
  for (int64_t ky = 0; ky < a.kh; ++ky) {
    const int64_t iy = oy * a.sh - a.ph + ky * a.dh;
    if (iy < 0 || iy >= g.h) {
      row = std::fill_n(row, a.kw * g.cg, 0.f);
      continue;
    }
    const float* line = nhwc + (image * g.h + iy) * g.w * a.c;
    if (whole_rows) {
      row = std::copy_n(line + ix0 * a.c, a.kw * a.c, row);
      continue;
    }
    for (int64_t kx = 0; kx < a.kw; ++kx) {
      const int64_t ix = ix0 + kx * a.dw;
      row = ix >= 0 && ix < g.w ? std::copy_n(line + ix * a.c + group * g.cg, g.cg, row) : std::fill_n(row, g.cg, 0.f);
    }
  }
}

void forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  Geometry g{};
  g.a = conv_attrs(c.node, x.shape()[1], x.shape()[2], x.shape()[3], DType::i8);
  const ConvAttrs& a = g.a;
  const int64_t n = x.shape()[0];
  g.h = x.shape()[2], g.w = x.shape()[3], g.oh = a.out_h(g.h), g.ow = a.out_w(g.w);
  g.positions = g.oh * g.ow, g.cg = a.c / a.groups, g.ocg = a.oc / a.groups, g.k = g.cg * a.kh * a.kw;
  const PackedGroups& packed = packed_int8_groups(c.node, a.groups, true);
  const std::unique_ptr<float[]> nhwc = channels_last(g, f32(x), n);
  const Param* bias = c.node.find_param("bias");
  Tensor y = uninitialized_f32(Shape{n, a.oc, g.oh, g.ow});
  // Blocks of rows whose u8 columns stay within a few MB. Each row is gathered in f32 into a
  // buffer of its own and quantized at once, so the block's f32 columns (4x the bytes) are never
  // written out; then one GEMM per group on all threads. Buffers are written in full before
  // they are read: not zero-filled.
  const int64_t total = n * g.positions, lda = int8_padded_k(g.k);
  const int64_t block = std::clamp<int64_t>((int64_t(4) << 20) / lda, 64, total);
  const std::unique_ptr<uint8_t[]> rows(new uint8_t[size_t(block * lda)]);
  const std::unique_ptr<float[]> result(new float[size_t(block * a.oc)]);
  std::vector<float> row_scale(static_cast<size_t>(block));
  std::vector<int32_t> row_zero(static_cast<size_t>(block));
  const KernelTable& table = kernels();
  for (int64_t first = 0; first < total; first += block) {
    const int64_t last = std::min(total, first + block), count = last - first;
    for (int64_t group = 0; group < a.groups; ++group) {
      parallel_for(first, last, std::max<int64_t>(1, 4096 / g.k), [&](int64_t lo, int64_t hi) {
        std::vector<float> row(static_cast<size_t>(g.k));
        for (int64_t r = lo; r < hi; ++r) {
          im2row(g, nhwc.get(), group, r, row.data());
          table.quantize_rows_u8(row.data(), 1, g.k, g.k, rows.get() + (r - first) * lda, lda,
                                 &row_scale[size_t(r - first)], &row_zero[size_t(r - first)]);
        }
      });
      packed[size_t(group)].matmul_u8(rows.get(), lda, row_scale.data(), row_zero.data(), count,
                                      bias ? f32(bias->value) + group * g.ocg : nullptr, result.get() + group * g.ocg,
                                      a.oc);
    }
    // (position, channel) -> NCHW, by output channel planes of each image.
    const int64_t image0 = first / g.positions, image1 = (last - 1) / g.positions + 1;
    parallel_for(image0 * a.oc, image1 * a.oc, std::max<int64_t>(1, 4096 / g.positions), [&](int64_t lo, int64_t hi) {
      for (int64_t plane = lo; plane < hi; ++plane) {
        const int64_t image = plane / a.oc, ch = plane % a.oc;
        const int64_t p0 = std::max(first, image * g.positions), p1 = std::min(last, (image + 1) * g.positions);
        float* out = f32(y) + plane * g.positions - image * g.positions;
        for (int64_t r = p0; r < p1; ++r) out[r] = result[size_t((r - first) * a.oc + ch)];
      }
    });
  }
  c.outputs[0] = y;
}

}  // namespace

extern const OpRules dynamic_quant_conv2d_rules{"DynamicQuantConv2d", infer, forward, nullptr};

}  // namespace shrink::nn::ops
