// Linear: x (..., in) -> y (..., out) = x W^T + b, W (out, in), b (out) optional; weight_bits fake-quantizes W (QAT).
// DynamicQuantLinear: the same with per-channel int8 weights (weight i8 (out, in), weight_scale f32
// (out)) and activations quantized per row at run time; bias stays f32. Inference only.
#include "ops/op_support.h"
#include "shrink/quant/int8_linear.h"

namespace shrink::nn::ops {
namespace {

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  if (in[0].shape.rank() < 1) fail(node, "input needs at least one dimension");
  int64_t out = attr_int(node, "out_features", -1), features = attr_int(node, "in_features", -1);
  if (out <= 0 || features <= 0) fail(node, "needs positive in_features and out_features");
  expect_dim(node, in[0].shape[in[0].shape.rank() - 1], features, "input's last dimension");
  const bool quantized = node.kind == "DynamicQuantLinear";
  expect_param(node, "weight", Shape{out, features}, quantized ? DType::i8 : DType::f32);
  if (quantized) expect_param(node, "weight_scale", Shape{out});
  if (node.find_param("bias")) expect_param(node, "bias", Shape{out});
  Shape shape = in[0].shape;
  shape[shape.rank() - 1] = out;
  return {{shape, DType::f32}};
}

void forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const Tensor w = compute_weight(c.node);
  int64_t out = w.shape()[0], features = w.shape()[1], rows = x.numel() / features;
  Shape shape = x.shape();
  shape[shape.rank() - 1] = out;
  Tensor y = new_f32(shape);
  float* yd = f32(y);
  float beta = 0.f;
  if (const Param* b = c.node.find_param("bias")) {
    for (int64_t r = 0; r < rows; ++r)
      std::copy(f32(b->value), f32(b->value) + out, yd + r * out);
    beta = 1.f;
  }
  gemm(false, true, rows, out, features, f32(x), features, f32(w), features, beta, yd, out);
  c.outputs[0] = y;
}

void backward(BackwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const Tensor w = compute_weight(c.node);
  const Tensor dy = grad_or_zeros(c.grad_outputs[0], c.outputs[0]).contiguous();
  int64_t out = w.shape()[0], features = w.shape()[1], rows = x.numel() / features;
  Tensor dx = new_like(x), dw = new_like(w);
  gemm(false, false, rows, features, out, f32(dy), out, f32(w), features, 0.f, f32(dx), features);
  gemm(true, false, out, features, rows, f32(dy), out, f32(x), features, 0.f, f32(dw), features);
  c.grad_inputs[0] = dx;
  set_param_grad(c, "weight", dw);
  if (c.node.find_param("bias")) {
    Tensor db = new_f32(Shape{out});
    float* dbd = f32(db);
    const float* g = f32(dy);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) dbd[o] += g[r * out + o];
    set_param_grad(c, "bias", db);
  }
}

void dynamic_quant_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const PackedInt8Matrix& w = prepared<PackedInt8Matrix>(
      c.node, [&] { return PackedInt8Matrix(c.node.param("weight").value, c.node.param("weight_scale").value); });
  const int64_t rows = x.numel() / w.k();
  Shape shape = x.shape();
  shape[shape.rank() - 1] = w.n();
  Tensor y = uninitialized_f32(shape);
  const Param* bias = c.node.find_param("bias");
  w.matmul_dynamic(f32(x), rows, w.k(), bias ? f32(bias->value) : nullptr, f32(y), w.n());
  c.outputs[0] = y;
}

}  // namespace

extern const OpRules linear_rules{"Linear", infer, forward, backward};
extern const OpRules dynamic_quant_linear_rules{"DynamicQuantLinear", infer, dynamic_quant_forward, nullptr};

}  // namespace shrink::nn::ops
