// Embedding: ids (...) of i32 or i64 -> (..., dim) rows of weight (num_embeddings, dim).
// Ids outside the table are a UsageError naming the id, never an out-of-bounds read.
// The table may be int8 per row: weight i8 plus weight_scale f32 (num_embeddings), row = q * scale
// (a language model's table shared with its int8 output layer). Only f32 tables train.
#include "ops/op_support.h"

namespace shrink::nn::ops {
namespace {

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  if (in[0].dtype != DType::i32 && in[0].dtype != DType::i64)
    fail(node, fmt::format("ids must be i32 or i64, got {}", dtype_name(in[0].dtype)));
  int64_t count = attr_int(node, "num_embeddings", -1), dim = attr_int(node, "embedding_dim", -1);
  if (count <= 0 || dim <= 0) fail(node, "needs num_embeddings and embedding_dim > 0");
  if (node.find_param("weight_scale")) {
    expect_param(node, "weight", Shape{count, dim}, DType::i8);
    expect_param(node, "weight_scale", Shape{count});
  } else {
    expect_param(node, "weight", Shape{count, dim});
  }
  std::vector<int64_t> dims = in[0].shape.dims().to_vector();
  dims.push_back(dim);
  return {{Shape(dims), DType::f32}};
}

int64_t id_at(const Tensor& ids, int64_t i) {
  return ids.dtype() == DType::i32 ? ids.data<int32_t>()[i] : ids.data<int64_t>()[i];
}

void forward(ForwardContext& c) {
  const Tensor ids = c.inputs[0].contiguous();
  const Tensor& w = c.node.param("weight").value;
  int64_t count = w.shape()[0], dim = w.shape()[1];
  std::vector<int64_t> dims = ids.shape().dims().to_vector();
  dims.push_back(dim);
  Tensor y = new_f32(Shape(dims));
  const Param* scale = c.node.find_param("weight_scale");
  for (int64_t i = 0; i < ids.numel(); ++i) {
    int64_t id = id_at(ids, i);
    if (id < 0 || id >= count)
      throw UsageError(fmt::format("id {} is outside the table of {} rows", id, count), c.node.name);
    if (scale) {
      const int8_t* row = w.data<int8_t>() + id * dim;
      const float s = f32(scale->value)[id];
      for (int64_t j = 0; j < dim; ++j) f32(y)[i * dim + j] = float(row[j]) * s;
    } else {
      std::copy(f32(w) + id * dim, f32(w) + (id + 1) * dim, f32(y) + i * dim);
    }
  }
  c.outputs[0] = y;
}

void backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  if (c.node.find_param("weight_scale")) fail(c.node, "an int8 table does not train");
  const Tensor ids = c.inputs[0].contiguous(), g = c.grad_outputs[0].contiguous();
  const Tensor& w = c.node.param("weight").value;
  int64_t dim = w.shape()[1];
  Tensor dw = new_like(w);
  for (int64_t i = 0; i < ids.numel(); ++i) {
    float* row = f32(dw) + id_at(ids, i) * dim;
    const float* gr = f32(g) + i * dim;
    for (int64_t j = 0; j < dim; ++j) row[j] += gr[j];
  }
  c.grad_params[0] = dw;
}

}  // namespace

extern const OpRules embedding_rules{"Embedding", infer, forward, backward};

}  // namespace shrink::nn::ops
