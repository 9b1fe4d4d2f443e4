// The int8 region of a statically quantized graph. Activations are u8 in [0, 127] with one
// per-tensor scale and zero (x ≈ (q - zero) * scale; 7 bits so the AVX2 kernels stay exact, as
// PyTorch's reduce_range on x86), weights i8 per output channel. Nodes carry their input and
// output qparams as attributes, so each one requantizes in its epilogue:
//   Quantize (f32 -> u8: scale, zero; layout "nchw_to_nhwc" for images entering the region),
//   Dequantize (u8 -> f32: scale, zero; layout "nhwc_to_nchw" for images leaving it),
//   QuantConv2d (u8 NHWC -> u8 NHWC, or f32 NCHW; Conv2d's attrs + relu, input_scale/zero,
//     output_scale/zero, output_dtype; params weight i8 (OC, C/groups, KH, KW) as in PyTorch,
//     weight_scale f32 (OC), bias f32 (OC)),
//   QuantLinear (u8 (N, in) -> u8 or f32, the same attributes and params for (out, in) weights),
//   QuantAdd (u8 + u8 -> u8: a_scale/zero, b_scale/zero, output_scale/zero, relu);
//   QuantConcat and QuantAdaptiveAvgPool2d: static_quant_structural.cpp.
// MaxPool2d (with layout "nhwc") and Flatten run on u8 directly. Inference only.
// Images inside the int8 region are channels-last (N, H, W, C): im2col then copies C contiguous
// bytes per kernel tap and the GEMM's (position, channel) result is already the next layer's input.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "ops/conv_rows.h"
#include "ops/op_support.h"
#include "ops/static_quant_support.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/int8_gemm.h"
#include "shrink/quant/int8_linear.h"

namespace shrink::nn::ops {
namespace {

// ---- Quantize / Dequantize

// "" (same layout), "nchw_to_nhwc" or "nhwc_to_nchw".
std::string layout_attr(const Node& node, const char* allowed) {
  const std::string layout = node.attrs.value("layout", std::string());
  if (!layout.empty() && layout != allowed) fail(node, fmt::format("layout must be \"{}\" or absent", allowed));
  return layout;
}
Shape nchw_to_nhwc(const Shape& s) { return Shape{s[0], s[2], s[3], s[1]}; }
Shape nhwc_to_nchw(const Shape& s) { return Shape{s[0], s[3], s[1], s[2]}; }

std::vector<ValueInfo> quantize_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  qparams_attr(node, "");
  if (layout_attr(node, "nchw_to_nhwc").empty()) return {{in[0].shape, DType::u8}};
  expect_rank(node, in[0], 4, "input (N, C, H, W)");
  return {{nchw_to_nhwc(in[0].shape), DType::u8}};
}
void quantize_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const ActivationQParams q = qparams_attr(c.node, "");
  const bool to_nhwc = !layout_attr(c.node, "nchw_to_nhwc").empty();
  Tensor y = Tensor::uninitialized(to_nhwc ? nchw_to_nhwc(x.shape()) : x.shape(), DType::u8);
  const float inverse = 1.f / q.scale;
  const float* in = f32(x);
  uint8_t* out = y.mutable_data<uint8_t>();
  const int64_t n = x.numel();
  if (to_nhwc) {
    const Shape s = x.shape();
    for (int64_t i = 0; i < n; ++i) out[nhwc_index(s, i)] = quantize_value(in[i], inverse, float(q.zero));
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = quantize_value(in[i], inverse, float(q.zero));
  }
  c.outputs[0] = y;
}

std::vector<ValueInfo> dequantize_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_u8(node, in[0], "input");
  qparams_attr(node, "");
  if (layout_attr(node, "nhwc_to_nchw").empty()) return {{in[0].shape, DType::f32}};
  expect_rank(node, in[0], 4, "input (N, H, W, C)");
  return {{nhwc_to_nchw(in[0].shape), DType::f32}};
}
void dequantize_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const ActivationQParams q = qparams_attr(c.node, "");
  const bool to_nchw = !layout_attr(c.node, "nhwc_to_nchw").empty();
  Tensor y = uninitialized_f32(to_nchw ? nhwc_to_nchw(x.shape()) : x.shape());
  const uint8_t* in = x.data<uint8_t>();
  float* out = f32(y);
  const int64_t n = x.numel();
  if (to_nchw) {
    const Shape s = y.shape();
    for (int64_t i = 0; i < n; ++i) out[i] = float(int32_t(in[nhwc_index(s, i)]) - q.zero) * q.scale;
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = float(int32_t(in[i]) - q.zero) * q.scale;
  }
  c.outputs[0] = y;
}

// ---- QuantConv2d / QuantLinear

bool f32_output(const Node& node) {
  auto it = node.attrs.find("output_dtype");
  if (it == node.attrs.end() || *it == "u8") return false;
  if (*it == "f32") return true;
  fail(node, "output_dtype must be \"u8\" or \"f32\"");
}

// The weight is checked by the caller; the scales and the attributes here.
void expect_quantized_attrs(const Node& node, int64_t out) {
  expect_param(node, "weight_scale", Shape{out});
  if (node.find_param("bias")) expect_param(node, "bias", Shape{out});
  qparams_attr(node, "input_");
  if (!f32_output(node)) qparams_attr(node, "output_");
  attr_bool(node, "relu", false);
}

std::vector<ValueInfo> conv_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_u8(node, in[0], "input");
  expect_rank(node, in[0], 4, "input (N, H, W, C)");
  const Shape& x = in[0].shape;  // (N, H, W, C)
  const ConvAttrs g = conv_attrs(node, x[3], x[1], x[2], DType::i8);
  expect_quantized_attrs(node, g.oc);
  const int64_t oh = g.out_h(x[1]), ow = g.out_w(x[2]);
  if (f32_output(node)) return {{Shape{in[0].shape[0], g.oc, oh, ow}, DType::f32}};
  return {{Shape{in[0].shape[0], oh, ow, g.oc}, DType::u8}};
}

std::vector<ValueInfo> linear_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_u8(node, in[0], "input");
  expect_rank(node, in[0], 2, "input (N, in_features)");
  const int64_t out = attr_int(node, "out_features", -1), features = attr_int(node, "in_features", -1);
  if (out <= 0 || features <= 0) fail(node, "needs positive in_features and out_features");
  expect_dim(node, in[0].shape[1], features, "input features");
  expect_param(node, "weight", Shape{out, features}, DType::i8);
  expect_quantized_attrs(node, out);
  return {{Shape{in[0].shape[0], out}, f32_output(node) ? DType::f32 : DType::u8}};
}

}  // namespace

const PackedGroups& packed_int8_groups(Node& node, int64_t groups, bool channels_last) {
  return prepared<PackedGroups>(node, [&] {
    Tensor w = node.param("weight").value.contiguous();
    const Tensor& s = node.param("weight_scale").value;
    const int64_t out = w.shape()[0], per_group = out / groups, k = w.numel() / out;
    if (w.rank() == 4 && channels_last) w = w.transpose(1, 2).transpose(2, 3).contiguous();  // (OC, KH, KW, C/groups)
    PackedGroups all;
    for (int64_t g = 0; g < groups; ++g)
      all.emplace_back(w.reshape(Shape{out, k}).slice(0, g * per_group, (g + 1) * per_group).contiguous(),
                       s.slice(0, g * per_group, (g + 1) * per_group).contiguous());
    return all;
  });
}

namespace {

// rows x n results of one GEMM into `out` (u8 or f32, row stride ldo) with the node's epilogue.
void int8_product(const Node& node, const PackedInt8Matrix& w, const uint8_t* a, int64_t rows, int64_t lda,
                  const float* bias, void* out, int64_t ldo) {
  const ActivationQParams in = qparams_attr(node, "input_");
  std::vector<float> a_scale(static_cast<size_t>(rows), in.scale);
  std::vector<int32_t> a_zero(static_cast<size_t>(rows), in.zero);
  Int8Epilogue e;
  e.a_scale = a_scale.data();
  e.a_zero = a_zero.data();
  e.b_scale = w.scale();
  e.b_col_sums = w.col_sums();
  e.bias = bias;
  e.relu = attr_bool(node, "relu", false);
  e.ldo = ldo;
  if (f32_output(node)) {
    e.out_f32 = static_cast<float*>(out);
  } else {
    const ActivationQParams o = qparams_attr(node, "output_");
    e.out_u8 = static_cast<uint8_t*>(out);
    e.out_inverse_scale = 1.f / o.scale;
    e.out_zero = o.zero;
    e.out_max = int32_t(kActivationMax);
  }
  kernels().gemm_u8s8(rows, w.n(), w.k(), a, lda, w.packed(), e);
}

// One QuantConv2d call on channels-last input: im2col rows (image, oy, ox) x columns (ky, kx,
// channel of the group), each tap a copy of C/groups contiguous bytes, then the int8 GEMM.
struct ConvRun {
  ConvRows geometry;
  int64_t lda;
  uint8_t pad;
  const uint8_t* src;  // (N, H, W, C)

  // Rows [first, last) of the whole batch into `rows` (one per output position, lda apart).
  void im2col(int64_t group, int64_t first, int64_t last, uint8_t* rows) const {
    for (int64_t r = first; r < last; ++r) {
      uint8_t* row = rows + (r - first) * lda;
      geometry.gather(src, group, r, pad, row);
      std::memset(row + geometry.k, 0, size_t(lda - geometry.k));
    }
  }
};

void conv_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const int64_t n = x.shape()[0];
  ConvRun run{ConvRows(conv_attrs(c.node, x.shape()[3], x.shape()[1], x.shape()[2], DType::i8), n, x.shape()[1],
                       x.shape()[2]),
              0, uint8_t(qparams_attr(c.node, "input_").zero), x.data<uint8_t>()};
  const ConvRows& geo = run.geometry;
  const ConvAttrs& g = geo.a;
  run.lda = int8_padded_k(geo.k);
  const bool to_f32 = f32_output(c.node);
  const PackedGroups& packed = packed_int8_groups(c.node, g.groups, true);
  const Param* bias = c.node.find_param("bias");
  // u8 results go straight into the (N, OH, OW, OC) output; f32 results (the region's exit) are
  // gathered in (position, channel) order and transposed to NCHW.
  Tensor y = to_f32 ? uninitialized_f32(Shape{n, g.oc, geo.oh, geo.ow})
                    : Tensor::uninitialized(Shape{n, geo.oh, geo.ow, g.oc}, DType::u8);
  // Rows [first, last) of the batch: im2col, then the GEMM, for every group.
  auto convolve = [&](int64_t first, int64_t last, bool parallel_inside) {
    const int64_t rows = last - first;
    // im2col writes every byte (padding columns included): no zero-filling.
    const std::unique_ptr<uint8_t[]> buffer(new uint8_t[size_t(rows * run.lda)]);
    uint8_t* const a = buffer.get();
    std::vector<float> result(to_f32 ? size_t(rows * g.oc) : 0);
    for (int64_t group = 0; group < g.groups; ++group) {
      if (parallel_inside) {
        parallel_for(first, last, std::max<int64_t>(1, 16384 / run.lda),
                     [&](int64_t lo, int64_t hi) { run.im2col(group, lo, hi, a + (lo - first) * run.lda); });
      } else {
        run.im2col(group, first, last, a);
      }
      void* out = to_f32 ? static_cast<void*>(result.data() + group * geo.ocg)
                         : static_cast<void*>(y.mutable_data<uint8_t>() + first * g.oc + group * geo.ocg);
      int8_product(c.node, packed[size_t(group)], a, rows, run.lda,
                   bias ? f32(bias->value) + group * geo.ocg : nullptr, out, g.oc);
    }
    if (to_f32) geo.to_nchw(result.data(), first, last, f32(y));
  };
  geo.for_row_blocks(convolve);
  c.outputs[0] = y;
}

void linear_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const PackedGroups& packed = packed_int8_groups(c.node, 1, true);
  const PackedInt8Matrix& w = packed[0];
  const int64_t rows = x.shape()[0], k = w.k(), lda = int8_padded_k(k);
  const bool to_f32 = f32_output(c.node);
  Tensor y = Tensor::uninitialized(Shape{rows, w.n()}, to_f32 ? DType::f32 : DType::u8);
  const uint8_t* a = x.data<uint8_t>();
  std::vector<uint8_t> padded;
  if (lda != k) {  // the kernel reads k rounded up to a multiple of 4
    padded.assign(size_t(rows * lda), 0);
    for (int64_t r = 0; r < rows; ++r) std::copy(a + r * k, a + (r + 1) * k, padded.data() + r * lda);
    a = padded.data();
  }
  const Param* bias = c.node.find_param("bias");
  int8_product(c.node, w, a, rows, lda, bias ? f32(bias->value) : nullptr, y.mutable_raw_data(), w.n());
  c.outputs[0] = y;
}

// ---- QuantAdd

std::vector<ValueInfo> add_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 2);
  expect_u8(node, in[0], "first input");
  expect_u8(node, in[1], "second input");
  if (in[0].shape.rank() != in[1].shape.rank()) fail(node, "inputs must have the same shape");
  for (int d = 0; d < in[0].shape.rank(); ++d) expect_dim(node, in[1].shape[d], in[0].shape[d], "second input's dimension");
  qparams_attr(node, "a_");
  qparams_attr(node, "b_");
  qparams_attr(node, "output_");
  attr_bool(node, "relu", false);
  return {{in[0].shape, DType::u8}};
}
void add_forward(ForwardContext& c) {
  const Tensor a = c.inputs[0].contiguous(), b = c.inputs[1].contiguous();
  if (a.shape() != b.shape()) fail(c.node, "inputs must have the same shape");
  const ActivationQParams qa = qparams_attr(c.node, "a_"), qb = qparams_attr(c.node, "b_"), qo = qparams_attr(c.node, "output_");
  const bool relu = attr_bool(c.node, "relu", false);
  Tensor y = Tensor::uninitialized(a.shape(), DType::u8);
  const uint8_t *pa = a.data<uint8_t>(), *pb = b.data<uint8_t>();
  uint8_t* out = y.mutable_data<uint8_t>();
  // v = sa (a - za) + sb (b - zb) = sa a + sb b + offset
  const float offset = -(float(qa.zero) * qa.scale + float(qb.zero) * qb.scale);
  const AddU8Params p{qa.scale, qb.scale, offset, relu ? 0.f : -INFINITY, 1.f / qo.scale, float(qo.zero), kActivationMax};
  const AddU8Fn add = kernels().add_u8;
  parallel_for(0, a.numel(), 16384, [&](int64_t first, int64_t last) {
    add(pa + first, pb + first, last - first, p, out + first);
  });
  c.outputs[0] = y;
}

}  // namespace

extern const OpRules quantize_rules{"Quantize", quantize_infer, quantize_forward, nullptr};
extern const OpRules dequantize_rules{"Dequantize", dequantize_infer, dequantize_forward, nullptr};
extern const OpRules quant_conv2d_rules{"QuantConv2d", conv_infer, conv_forward, nullptr};
extern const OpRules quant_linear_rules{"QuantLinear", linear_infer, linear_forward, nullptr};
extern const OpRules quant_add_rules{"QuantAdd", add_infer, add_forward, nullptr};

}  // namespace shrink::nn::ops
