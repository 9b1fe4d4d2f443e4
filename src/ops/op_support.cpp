// Shared checks for the ops' infer() rules.
#include "ops/op_support.h"

#include "shrink/quant/int8_linear.h"

namespace shrink::nn::ops {

std::pair<int64_t, int64_t> attr_pair(const Node& node, const char* key, int64_t fallback) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) return {fallback, fallback};
  if (it->is_number_integer()) return {it->get<int64_t>(), it->get<int64_t>()};
  if (it->is_array() && it->size() == 2 && (*it)[0].is_number_integer() &&
      (*it)[1].is_number_integer())
    return {(*it)[0].get<int64_t>(), (*it)[1].get<int64_t>()};
  throw UsageError(fmt::format("attribute '{}' must be an integer or a pair", key), node.name);
}

void fail(const Node& node, const std::string& problem) {
  throw UsageError(problem, node.name + " (" + node.kind + ")");
}

ConvAttrs conv_attrs(const Node& node, int64_t channels, int64_t h, int64_t w, DType weight_dtype) {
  ConvAttrs a{};
  a.c = attr_int(node, "in_channels", -1);
  a.oc = attr_int(node, "out_channels", -1);
  std::tie(a.kh, a.kw) = attr_pair(node, "kernel_size", -1);
  std::tie(a.sh, a.sw) = attr_pair(node, "stride", 1);
  std::tie(a.ph, a.pw) = attr_pair(node, "padding", 0);
  std::tie(a.dh, a.dw) = attr_pair(node, "dilation", 1);
  a.groups = attr_int(node, "groups", 1);
  if (a.c <= 0 || a.oc <= 0 || a.kh <= 0 || a.kw <= 0 || a.sh <= 0 || a.sw <= 0 || a.ph < 0 || a.pw < 0 ||
      a.dh <= 0 || a.dw <= 0 || a.groups <= 0)
    fail(node, "needs positive channels, kernel_size, stride, dilation, groups and padding >= 0");
  if (a.c % a.groups || a.oc % a.groups)
    fail(node, fmt::format("groups {} must divide in_channels {} and out_channels {}", a.groups, a.c, a.oc));
  expect_dim(node, channels, a.c, "input channels");
  if ((h >= 0 && a.out_h(h) <= 0) || (w >= 0 && a.out_w(w) <= 0))
    fail(node, fmt::format("input {}x{} is smaller than the dilated kernel", h, w));
  expect_param(node, "weight", Shape{a.oc, a.c / a.groups, a.kh, a.kw}, weight_dtype);
  if (node.find_param("bias")) expect_param(node, "bias", Shape{a.oc});
  return a;
}

void expect_inputs(const Node& node, std::span<const ValueInfo> inputs, size_t count) {
  if (inputs.size() != count)
    fail(node, fmt::format("takes {} input(s), got {}", count, inputs.size()));
}

void expect_rank(const Node& node, const ValueInfo& info, int rank, const char* what) {
  if (info.shape.rank() != rank)
    fail(node, fmt::format("{} must have rank {}, got shape {}", what, rank, info.shape.to_string()));
}

void expect_f32(const Node& node, const ValueInfo& info, const char* what) {
  if (info.dtype != DType::f32)
    fail(node, fmt::format("{} must be f32, got {}", what, dtype_name(info.dtype)));
}

void expect_param(const Node& node, const char* local_name, const Shape& shape) {
  expect_param(node, local_name, shape, DType::f32);
}

void expect_param(const Node& node, const char* local_name, const Shape& shape, DType dtype) {
  const Param* p = node.find_param(local_name);
  if (!p || !p->value.defined()) fail(node, fmt::format("missing parameter '{}'", local_name));
  if (p->value.dtype() != dtype)
    fail(node, fmt::format("parameter '{}' must be {}, got {}", local_name, dtype_name(dtype),
                           dtype_name(p->value.dtype())));
  if (p->value.shape() != shape)
    fail(node, fmt::format("parameter '{}' has shape {}, expected {}", local_name,
                           p->value.shape().to_string(), shape.to_string()));
}

Tensor compute_weight(const Node& node) {
  const Tensor& w = node.param("weight").value;
  const int64_t bits = attr_int(node, "weight_bits", 0);
  if (bits == 0) return w;
  if (bits < 2 || bits > 8) fail(node, "weight_bits must be between 2 and 8");
  return fake_quantize_per_channel(w, int(bits));
}

bool dims_compatible(int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; }

void expect_dim(const Node& node, int64_t actual, int64_t expected, const char* what) {
  if (!dims_compatible(actual, expected))
    fail(node, fmt::format("{} is {}, expected {}", what, actual, expected));
}

void set_param_grad(BackwardContext& c, std::string_view local_name, const Tensor& grad) {
  for (size_t i = 0; i < c.node.params.size(); ++i)
    if (c.node.params[i].name == local_name) c.grad_params[i] = grad;
}

Tensor grad_or_zeros(const Tensor& grad, const Tensor& like) {
  return grad.defined() ? grad : Tensor::empty(like.shape(), DType::f32);
}

}  // namespace shrink::nn::ops
