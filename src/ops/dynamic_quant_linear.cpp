// DynamicQuantLinear: Linear with per-channel int8 weights (weight i8 (out, in), weight_scale f32
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
  expect_param(node, "weight", Shape{out, features}, DType::i8);
  expect_param(node, "weight_scale", Shape{out});
  if (node.find_param("bias")) expect_param(node, "bias", Shape{out});
  Shape shape = in[0].shape;
  shape[shape.rank() - 1] = out;
  return {{shape, DType::f32}};
}

void forward(ForwardContext& c) {
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

extern const OpRules dynamic_quant_linear_rules{"DynamicQuantLinear", infer, forward, nullptr};

}  // namespace shrink::nn::ops
