// Helpers shared by the op files: attribute access, shape checks for infer(), f32 data access,
// and the f32 GEMM used by the layers.
#pragma once
#include <fmt/format.h>

#include <span>
#include <string>
#include <vector>

#include "shrink/kernels/registry.h"
#include "shrink/nn/op.h"

namespace shrink::nn::ops {

inline int64_t attr_int(const Node& node, const char* key, int64_t fallback) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) return fallback;
  if (!it->is_number_integer())
    throw UsageError(fmt::format("attribute '{}' must be an integer", key), node.name);
  return it->get<int64_t>();
}
inline double attr_float(const Node& node, const char* key, double fallback) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) return fallback;
  if (!it->is_number()) throw UsageError(fmt::format("attribute '{}' must be a number", key), node.name);
  return it->get<double>();
}
inline bool attr_bool(const Node& node, const char* key, bool fallback) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) return fallback;
  if (!it->is_boolean()) throw UsageError(fmt::format("attribute '{}' must be true or false", key), node.name);
  return it->get<bool>();
}
// A pair attribute given as one integer or [a, b].
std::pair<int64_t, int64_t> attr_pair(const Node& node, const char* key, int64_t fallback);

[[noreturn]] void fail(const Node& node, const std::string& problem);

// Conv2d's attributes, shared by Conv2d and QuantConv2d (whose inputs differ in layout only).
struct ConvAttrs {
  int64_t c, oc, kh, kw, sh, sw, ph, pw, dh, dw, groups;
  // Output size along one spatial dimension (-1 stays -1).
  int64_t out_h(int64_t h) const { return h < 0 ? -1 : (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1; }
  int64_t out_w(int64_t w) const { return w < 0 ? -1 : (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1; }
};
// Reads them and checks them (positive sizes, groups dividing both channel counts); then checks
// the input's channels, that the input (h, w) covers the dilated kernel, and the weight and bias
// (of the given weight dtype).
ConvAttrs conv_attrs(const Node& node, int64_t channels, int64_t h, int64_t w, DType weight_dtype);
void expect_inputs(const Node& node, std::span<const ValueInfo> inputs, size_t count);
void expect_rank(const Node& node, const ValueInfo& info, int rank, const char* what);
void expect_f32(const Node& node, const ValueInfo& info, const char* what);
// The parameter exists, is f32 and has exactly this shape.
void expect_param(const Node& node, const char* local_name, const Shape& shape);
void expect_param(const Node& node, const char* local_name, const Shape& shape, DType dtype);

// The weight Linear and Conv2d compute with: the parameter, or with attribute weight_bits set
// (quantization-aware training), the parameter fake-quantized per output channel to that many
// bits. Its gradient passes straight through (every weight lies inside its channel's range).
Tensor compute_weight(const Node& node);

// The node's prepared form of its params (see Node::prepared), built by make() on first use.
template <class T, class Make> const T& prepared(Node& node, Make make) {
  if (!node.prepared) node.prepared = std::make_shared<const T>(make());
  return *static_cast<const T*>(node.prepared.get());
}
// Known dims must agree (-1 matches anything).
bool dims_compatible(int64_t a, int64_t b);
void expect_dim(const Node& node, int64_t actual, int64_t expected, const char* what);

inline const float* f32(const Tensor& t) { return t.data<float>(); }
inline float* f32(Tensor& t) { return t.mutable_data<float>(); }
inline Tensor new_f32(const Shape& shape) { return Tensor::empty(shape, DType::f32); }
inline Tensor new_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype()); }
// For outputs the op writes in full (saves the zero-fill).
inline Tensor uninitialized_f32(const Shape& shape) { return Tensor::uninitialized(shape, DType::f32); }
inline Tensor uninitialized_like(const Tensor& t) { return Tensor::uninitialized(t.shape(), t.dtype()); }
// Gradient tensor of a value: the given one, or zeros when backward did not reach it.
Tensor grad_or_zeros(const Tensor& grad, const Tensor& like);

// Hands a parameter's gradient to the executor by local name (ignored if the node lacks it).
void set_param_grad(BackwardContext& c, std::string_view local_name, const Tensor& grad);

// C(m,n) (+)= op(A) op(B) with the registry's best f32 GEMM.
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  kernels().gemm_f32(trans_a, trans_b, m, n, k, 1.f, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace shrink::nn::ops
