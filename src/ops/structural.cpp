// Ops that move or combine values: Flatten (start_dim 1), Reshape (attribute "shape", one
// dimension may be -1: whatever the element count leaves), Add and Mul (same shapes), Concat
// (along an axis), Dropout (inverted, identity in eval).
#include <algorithm>

#include "ops/op_support.h"
#include "shrink/core/parallel.h"

namespace shrink::nn::ops {
namespace {

std::vector<ValueInfo> flatten_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  if (in[0].shape.rank() < 2) fail(node, "input needs at least two dimensions");
  int64_t inner = 1;
  for (int axis = 1; axis < in[0].shape.rank(); ++axis)
    inner = in[0].shape[axis] < 0 || inner < 0 ? -1 : inner * in[0].shape[axis];
  return {{Shape{in[0].shape[0], inner}, in[0].dtype}};
}
void flatten_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  c.outputs[0] = x.reshape(Shape{x.shape()[0], x.numel() / std::max<int64_t>(x.shape()[0], 1)});
}
void flatten_backward(BackwardContext& c) {
  if (c.grad_outputs[0].defined())
    c.grad_inputs[0] = c.grad_outputs[0].contiguous().reshape(c.inputs[0].shape());
}

std::vector<int64_t> reshape_target(const Node& node) {
  auto it = node.attrs.find("shape");
  if (it == node.attrs.end() || !it->is_array() || it->empty()) fail(node, "needs a non-empty 'shape' list");
  std::vector<int64_t> dims;
  int free = 0;
  for (const auto& d : *it) {
    if (!d.is_number_integer() || d.get<int64_t>() < -1 || d.get<int64_t>() == 0)
      fail(node, "'shape' holds positive sizes and at most one -1");
    dims.push_back(d.get<int64_t>());
    free += dims.back() == -1;
  }
  if (free > 1) fail(node, "'shape' holds at most one -1");
  return dims;
}
// The target with its -1 resolved for `count` elements (count < 0: unknown, the -1 stays).
Shape resolve_reshape(const Node& node, std::vector<int64_t> dims, int64_t count) {
  if (count < 0) return Shape(std::span<const int64_t>(dims));
  int64_t known = 1;
  for (int64_t d : dims) known *= d == -1 ? 1 : d;
  for (int64_t& d : dims)
    if (d == -1) d = known > 0 && count % known == 0 ? count / known : 0;
  int64_t total = 1;
  for (int64_t d : dims) total *= d;
  if (total != count || count == 0)
    fail(node, fmt::format("{} elements do not reshape to {}", count, node.attrs["shape"].dump()));
  return Shape(std::span<const int64_t>(dims));
}
std::vector<ValueInfo> reshape_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  int64_t count = 1;
  for (int axis = 0; axis < in[0].shape.rank(); ++axis)
    count = in[0].shape[axis] < 0 || count < 0 ? -1 : count * in[0].shape[axis];
  return {{resolve_reshape(node, reshape_target(node), count), in[0].dtype}};
}
void reshape_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  c.outputs[0] = x.reshape(resolve_reshape(c.node, reshape_target(c.node), x.numel()));
}

std::vector<ValueInfo> binary_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 2);
  expect_f32(node, in[0], "first input");
  expect_f32(node, in[1], "second input");
  if (in[0].shape.rank() != in[1].shape.rank())
    fail(node, fmt::format("inputs {} and {} differ in rank", in[0].shape.to_string(),
                           in[1].shape.to_string()));
  Shape shape = in[0].shape;
  for (int axis = 0; axis < shape.rank(); ++axis) {
    if (!dims_compatible(in[0].shape[axis], in[1].shape[axis]))
      fail(node, fmt::format("inputs {} and {} differ in shape", in[0].shape.to_string(),
                             in[1].shape.to_string()));
    if (shape[axis] < 0) shape[axis] = in[1].shape[axis];
  }
  return {{shape, DType::f32}};
}

template <bool kMultiply> void binary_forward(ForwardContext& c) {
  const Tensor a = c.inputs[0].contiguous(), b = c.inputs[1].contiguous();
  if (a.shape() != b.shape())
    throw UsageError(fmt::format("inputs {} and {} differ in shape", a.shape().to_string(),
                                 b.shape().to_string()),
                     c.node.name);
  Tensor y = uninitialized_like(a);
  const float *ad = f32(a), *bd = f32(b);
  float* yd = f32(y);
  parallel_for(0, a.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) yd[i] = kMultiply ? ad[i] * bd[i] : ad[i] + bd[i];
  });
  c.outputs[0] = y;
}
void add_backward(BackwardContext& c) {
  c.grad_inputs[0] = c.grad_outputs[0];
  c.grad_inputs[1] = c.grad_outputs[0];
}
void mul_backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor g = c.grad_outputs[0].contiguous();
  for (int side = 0; side < 2; ++side) {
    const Tensor other = c.inputs[size_t(1 - side)].contiguous();
    Tensor d = new_like(other);
    for (int64_t i = 0; i < d.numel(); ++i) f32(d)[i] = f32(g)[i] * f32(other)[i];
    c.grad_inputs[size_t(side)] = d;
  }
}

int concat_axis(const Node& node, int rank) {
  int64_t axis = attr_int(node, "axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) fail(node, fmt::format("axis {} is out of range", axis));
  return int(axis);
}
std::vector<ValueInfo> concat_infer(const Node& node, std::span<const ValueInfo> in) {
  if (in.empty()) fail(node, "needs at least one input");
  Shape shape = in[0].shape;
  int axis = concat_axis(node, shape.rank());
  for (size_t i = 1; i < in.size(); ++i) {
    if (in[i].shape.rank() != shape.rank() || in[i].dtype != in[0].dtype)
      fail(node, "inputs differ in rank or dtype");
    for (int d = 0; d < shape.rank(); ++d)
      if (d == axis)
        shape[d] = shape[d] < 0 || in[i].shape[d] < 0 ? -1 : shape[d] + in[i].shape[d];
      else if (!dims_compatible(shape[d], in[i].shape[d]))
        fail(node, fmt::format("inputs differ in dimension {}", d));
  }
  return {{shape, in[0].dtype}};
}
// Views x as (outer, axis, inner) and copies blocks between the parts and the whole.
template <bool kScatter>
void concat_copy(int axis, const std::vector<Tensor>& parts, Tensor& whole) {
  int64_t outer = 1, inner = dtype_size(whole.dtype());
  for (int d = 0; d < axis; ++d) outer *= whole.shape()[d];
  for (int d = axis + 1; d < whole.rank(); ++d) inner *= whole.shape()[d];
  int64_t whole_row = whole.shape()[axis] * inner, offset = 0;
  auto* base = static_cast<std::byte*>(whole.mutable_raw_data());
  for (const Tensor& part : parts) {
    int64_t row = part.shape()[axis] * inner;
    auto* p = static_cast<std::byte*>(const_cast<void*>(part.raw_data()));
    for (int64_t o = 0; o < outer; ++o) {
      std::byte* w = base + o * whole_row + offset;
      if (kScatter) std::copy(w, w + row, p + o * row);
      else std::copy(p + o * row, p + (o + 1) * row, w);
    }
    offset += row;
  }
}
void concat_forward(ForwardContext& c) {
  std::vector<Tensor> parts;
  Shape shape = c.inputs[0].shape();
  int axis = concat_axis(c.node, shape.rank());
  shape[axis] = 0;
  for (const Tensor& t : c.inputs) {
    parts.push_back(t.contiguous());
    shape[axis] += t.shape()[axis];
  }
  Tensor y = Tensor::empty(shape, c.inputs[0].dtype());
  concat_copy<false>(axis, parts, y);
  c.outputs[0] = y;
}
void concat_backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  Tensor g = c.grad_outputs[0].contiguous();
  std::vector<Tensor> parts;
  for (const Tensor& t : c.inputs) parts.push_back(new_like(t));
  concat_copy<true>(concat_axis(c.node, g.rank()), parts, g);
  for (size_t i = 0; i < parts.size(); ++i) c.grad_inputs[i] = parts[i];
}

std::vector<ValueInfo> dropout_infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  double p = attr_float(node, "p", 0.5);
  if (!(p >= 0 && p < 1)) fail(node, "p must be in [0, 1)");
  return {in[0]};
}
void dropout_forward(ForwardContext& c) {
  double p = attr_float(c.node, "p", 0.5);
  if (!c.training || p == 0) {
    c.outputs[0] = c.inputs[0];
    return;
  }
  const Tensor x = c.inputs[0].contiguous();
  Tensor y = new_like(x), mask = new_like(x);
  float keep_scale = float(1.0 / (1.0 - p));
  for (int64_t i = 0; i < x.numel(); ++i) {
    f32(mask)[i] = c.rng.uniform() >= float(p) ? keep_scale : 0.f;
    f32(y)[i] = f32(x)[i] * f32(mask)[i];
  }
  c.outputs[0] = y;
  if (c.record) c.saved = {mask};
}
void dropout_backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  if (c.saved.empty()) {
    c.grad_inputs[0] = c.grad_outputs[0];
    return;
  }
  const Tensor g = c.grad_outputs[0].contiguous();
  Tensor d = new_like(g);
  for (int64_t i = 0; i < g.numel(); ++i) f32(d)[i] = f32(g)[i] * f32(c.saved[0])[i];
  c.grad_inputs[0] = d;
}

}  // namespace

extern const OpRules flatten_rules{"Flatten", flatten_infer, flatten_forward, flatten_backward};
extern const OpRules reshape_rules{"Reshape", reshape_infer, reshape_forward, flatten_backward};
extern const OpRules add_rules{"Add", binary_infer, binary_forward<false>, add_backward};
extern const OpRules mul_rules{"Mul", binary_infer, binary_forward<true>, mul_backward};
extern const OpRules concat_rules{"Concat", concat_infer, concat_forward, concat_backward};
extern const OpRules dropout_rules{"Dropout", dropout_infer, dropout_forward, dropout_backward};

}  // namespace shrink::nn::ops
