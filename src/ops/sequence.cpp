// Ops over the token axis of (N, T, D) sequences, for encoders:
// PositionEmbedding: y[n, t] = x[n, t] + weight[t], weight (max_positions, D) — BERT's learned
// absolute positions (T must not exceed max_positions: a UsageError, never an out-of-range read).
// MeanPool: (N, T, D) -> (N, D), the mean over tokens — sentence-transformers' mean pooling for
// unpadded sequences.
#include "ops/op_support.h"

namespace shrink::nn::ops {
namespace {

std::vector<ValueInfo> position_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  expect_rank(node, in[0], 3, "input (N, T, D)");
  const int64_t positions = attr_int(node, "max_positions", -1), dim = attr_int(node, "embedding_dim", -1);
  if (positions <= 0 || dim <= 0) fail(node, "needs max_positions and embedding_dim > 0");
  expect_param(node, "weight", Shape{positions, dim});
  expect_dim(node, in[0].shape[2], dim, "input's last dimension");
  if (in[0].shape[1] > positions) fail(node, fmt::format("{} tokens exceed max_positions {}", in[0].shape[1], positions));
  return {in[0]};
}

void position_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const Tensor& w = c.node.param("weight").value;
  const int64_t n = x.shape()[0], t = x.shape()[1], d = x.shape()[2];
  if (t > w.shape()[0])
    throw UsageError(fmt::format("{} tokens exceed the {} learned positions", t, w.shape()[0]), c.node.name);
  Tensor y = new_f32(x.shape());
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < t * d; ++i) f32(y)[b * t * d + i] = x.data<float>()[b * t * d + i] + f32(w)[i];
  c.outputs[0] = y;
}

void position_backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor g = c.grad_outputs[0].contiguous();
  const int64_t n = g.shape()[0], t = g.shape()[1], d = g.shape()[2];
  Tensor dw = new_like(c.node.param("weight").value);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < t * d; ++i) f32(dw)[i] += g.data<float>()[b * t * d + i];
  c.grad_inputs[0] = g;
  c.grad_params[0] = dw;
}

std::vector<ValueInfo> mean_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  expect_rank(node, in[0], 3, "input (N, T, D)");
  return {{Shape{in[0].shape[0], in[0].shape[2]}, DType::f32}};
}

void mean_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const int64_t n = x.shape()[0], t = x.shape()[1], d = x.shape()[2];
  if (t == 0) throw UsageError("mean pooling over an empty sequence", c.node.name);
  Tensor y = new_f32(Shape{n, d});
  for (int64_t b = 0; b < n; ++b) {
    float* row = f32(y) + b * d;
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < d; ++j) row[j] += x.data<float>()[(b * t + i) * d + j];
    for (int64_t j = 0; j < d; ++j) row[j] /= float(t);
  }
  c.outputs[0] = y;
}

void mean_backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor g = c.grad_outputs[0].contiguous();
  const Shape& shape = c.inputs[0].shape();
  const int64_t n = shape[0], t = shape[1], d = shape[2];
  Tensor dx = new_f32(shape);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < d; ++j) f32(dx)[(b * t + i) * d + j] = g.data<float>()[b * d + j] / float(t);
  c.grad_inputs[0] = dx;
}

}  // namespace

extern const OpRules position_embedding_rules{"PositionEmbedding", position_infer, position_forward, position_backward};
extern const OpRules mean_pool_rules{"MeanPool", mean_infer, mean_forward, mean_backward};

}  // namespace shrink::nn::ops
