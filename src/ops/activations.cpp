// Element-wise activations: ReLU, ReLU6, GELU (exact erf form, or tanh with
// approximate="tanh"), SiLU, Tanh, Sigmoid. Each is a value function and its derivative in x;
// SiLU, Tanh and Sigmoid run forward through the vectorised kernel slots (`rows`; the scalar
// expf was 3% of GPTQ's calibration time).
#include <cmath>

#include "ops/op_support.h"
#include "ops/row_kernels.h"
#include "shrink/core/parallel.h"

namespace shrink::nn::ops {
namespace {

std::vector<ValueInfo> same_as_input(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  return {in[0]};
}

constexpr float kSqrt2OverPi = 0.7978845608028654f, kInvSqrt2 = 0.7071067811865476f;

struct Relu {
  static float f(float x) { return x > 0.f ? x : 0.f; }
  static float df(float x) { return x > 0.f ? 1.f : 0.f; }
};
struct Relu6 {
  static float f(float x) { return std::min(std::max(x, 0.f), 6.f); }
  static float df(float x) { return x > 0.f && x < 6.f ? 1.f : 0.f; }
};
struct GeluErf {
  static float f(float x) { return 0.5f * x * (1.f + std::erf(x * kInvSqrt2)); }
  static float df(float x) {
    float pdf = std::exp(-0.5f * x * x) * 0.3989422804014327f;
    return 0.5f * (1.f + std::erf(x * kInvSqrt2)) + x * pdf;
  }
};
struct GeluTanh {
  static float f(float x) {
    return 0.5f * x * (1.f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
  }
  static float df(float x) {
    float u = kSqrt2OverPi * (x + 0.044715f * x * x * x), t = std::tanh(u);
    return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * kSqrt2OverPi * (1.f + 3 * 0.044715f * x * x);
  }
};
struct Sigmoid {
  static float f(float x) { return 1.f / (1.f + std::exp(-x)); }
  static void rows(const float* x, float* y, int64_t n) { kernels().sigmoid_f32(x, y, n); }
  static float df(float x) {
    float s = f(x);
    return s * (1.f - s);
  }
};
struct Silu {
  static float f(float x) { return x * Sigmoid::f(x); }
  static void rows(const float* x, float* y, int64_t n) { silu_row(x, y, n); }
  static float df(float x) {
    float s = Sigmoid::f(x);
    return s * (1.f + x * (1.f - s));
  }
};
struct Tanh {
  static float f(float x) { return std::tanh(x); }
  static void rows(const float* x, float* y, int64_t n) { kernels().tanh_f32(x, y, n); }
  static float df(float x) {
    float t = std::tanh(x);
    return 1.f - t * t;
  }
};

template <class F> void forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  Tensor y = uninitialized_like(x);
  const float* xd = f32(x);
  float* yd = f32(y);
  parallel_for(0, x.numel(), 1 << 15, [&](int64_t b, int64_t e) {
    if constexpr (requires { F::rows(xd, yd, e - b); }) {
      F::rows(xd + b, yd + b, e - b);
    } else {
      for (int64_t i = b; i < e; ++i) yd[i] = F::f(xd[i]);
    }
  });
  c.outputs[0] = y;
}

template <class F> void backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor x = c.inputs[0].contiguous(), dy = c.grad_outputs[0].contiguous();
  Tensor dx = uninitialized_like(x);
  const float *xd = f32(x), *g = f32(dy);
  float* out = f32(dx);
  parallel_for(0, x.numel(), 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = g[i] * F::df(xd[i]);
  });
  c.grad_inputs[0] = dx;
}

bool tanh_gelu(const Node& node) {
  auto it = node.attrs.find("approximate");
  if (it == node.attrs.end()) return false;
  if (*it == "tanh") return true;
  if (*it == "none") return false;
  fail(node, "approximate must be \"none\" or \"tanh\"");
}
void gelu_forward(ForwardContext& c) {
  tanh_gelu(c.node) ? forward<GeluTanh>(c) : forward<GeluErf>(c);
}
void gelu_backward(BackwardContext& c) {
  tanh_gelu(c.node) ? backward<GeluTanh>(c) : backward<GeluErf>(c);
}
std::vector<ValueInfo> gelu_infer(const Node& node, std::span<const ValueInfo> in) {
  tanh_gelu(node);
  return same_as_input(node, in);
}

}  // namespace

void silu_row(const float* x, float* y, int64_t n) {
  kernels().sigmoid_f32(x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] *= x[i];
}

extern const OpRules relu_rules{"ReLU", same_as_input, forward<Relu>, backward<Relu>};
extern const OpRules relu6_rules{"ReLU6", same_as_input, forward<Relu6>, backward<Relu6>};
extern const OpRules gelu_rules{"GELU", gelu_infer, gelu_forward, gelu_backward};
extern const OpRules silu_rules{"SiLU", same_as_input, forward<Silu>, backward<Silu>};
extern const OpRules tanh_rules{"Tanh", same_as_input, forward<Tanh>, backward<Tanh>};
extern const OpRules sigmoid_rules{"Sigmoid", same_as_input, forward<Sigmoid>, backward<Sigmoid>};

}  // namespace shrink::nn::ops
