// DynamicQuantConv2d: Conv2d (x f32 NCHW -> y f32 NCHW, the same attributes) with per-channel
// int8 weights (weight i8 (OC, C/groups, KH, KW), weight_scale f32 (OC), bias f32 (OC) optional)
// and activations quantized at run time per output position: each receptive field (one im2col
// row of C/groups * KH * KW inputs) gets its own u8 range, as DynamicQuantLinear quantizes each
// row of its input. The rows are gathered from a channels-last copy of the input, where a tap's
// channels (and with one group a kernel row's taps) are contiguous (conv_rows.h, shared with
// QuantConv2d): from NCHW, a 3 x 3 convolution's rows were 3-value pieces, and the gathering had
// made it slower than f32. No calibration: each of a raw waveform's frames has its own scale (a
// trial of static int8, one scale per tensor, had left 86-96% of Silero VAD's chunks decided
// alike; this keeps 97.5%, and 99.75% without the first two convolutions: results.md).
// Inference only.
#include <algorithm>
#include <memory>
#include <vector>

#include "ops/conv_rows.h"
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

// The input channels-last, (N, H, W, C), so that each kernel tap's channels are contiguous.
// (Tensor::contiguous of the transposed view would copy element by element on one thread, after
// zero-filling: this sits on every call's path.)
std::unique_ptr<float[]> channels_last(const ConvRows& g, const float* x) {
  const int64_t c = g.a.c;
  std::unique_ptr<float[]> out(new float[size_t(g.n * g.h * g.w * c)]);
  parallel_for(0, g.n * g.h, std::max<int64_t>(1, 16384 / (g.w * c)), [&](int64_t lo, int64_t hi) {
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

void forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const ConvRows g(conv_attrs(c.node, x.shape()[1], x.shape()[2], x.shape()[3], DType::i8), x.shape()[0],
                   x.shape()[2], x.shape()[3]);
  const ConvAttrs& a = g.a;
  const PackedGroups& packed = packed_int8_groups(c.node, a.groups, true);
  const std::unique_ptr<float[]> nhwc = channels_last(g, f32(x));
  const Param* bias = c.node.find_param("bias");
  Tensor y = uninitialized_f32(Shape{g.n, a.oc, g.oh, g.ow});
  const int64_t lda = int8_padded_k(g.k);
  const KernelTable& table = kernels();
  // Rows [first, last): each gathered in f32 into a buffer of its own and quantized at once, so
  // the f32 columns (4x the bytes of the u8 ones) are never written out; then the GEMM per group.
  // Buffers are written in full before they are read: not zero-filled.
  auto convolve = [&](int64_t first, int64_t last, bool parallel_inside) {
    const int64_t count = last - first;
    const std::unique_ptr<uint8_t[]> rows(new uint8_t[size_t(count * lda)]);
    const std::unique_ptr<float[]> scale(new float[size_t(count)]), result(new float[size_t(count * a.oc)]);
    const std::unique_ptr<int32_t[]> zero(new int32_t[size_t(count)]);
    auto quantize = [&](int64_t group, int64_t lo, int64_t hi) {
      const std::unique_ptr<float[]> row(new float[size_t(g.k)]);
      for (int64_t r = lo; r < hi; ++r) {
        g.gather(nhwc.get(), group, r, 0.f, row.get());
        table.quantize_rows_u8(row.get(), 1, g.k, g.k, rows.get() + (r - first) * lda, lda, &scale[size_t(r - first)],
                               &zero[size_t(r - first)]);
      }
    };
    for (int64_t group = 0; group < a.groups; ++group) {
      if (parallel_inside) {
        parallel_for(first, last, std::max<int64_t>(1, 4096 / g.k),
                     [&](int64_t lo, int64_t hi) { quantize(group, lo, hi); });
      } else {
        quantize(group, first, last);
      }
      packed[size_t(group)].matmul_u8(rows.get(), lda, scale.get(), zero.get(), count,
                                      bias ? f32(bias->value) + group * g.ocg : nullptr, result.get() + group * g.ocg,
                                      a.oc);
    }
    g.to_nchw(result.get(), first, last, f32(y));
  };
  g.for_row_blocks(convolve);
  c.outputs[0] = y;
}

}  // namespace

extern const OpRules dynamic_quant_conv2d_rules{"DynamicQuantConv2d", infer, forward, nullptr};

}  // namespace shrink::nn::ops
