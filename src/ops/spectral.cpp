// ComplexMagnitude: |z| of complex values stored as two halves of axis 1, real parts in the first
// C channels and imaginary parts in the next C: x (N, 2C, ...) -> y (N, C, ...), y = sqrt(re² +
// im²). This is how a short-time Fourier transform written as a convolution (cos and sin bases
// stacked as output channels, Silero VAD's STFT) becomes a magnitude spectrogram.
// Gradient: d|z|/d re = re / |z|, d|z|/d im = im / |z|; zero where |z| = 0.
#include <cmath>

#include "ops/op_support.h"
#include "shrink/core/parallel.h"

namespace shrink::nn::ops {
namespace {

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  if (in[0].shape.rank() < 2) fail(node, "input needs at least two dimensions (N, 2C, ...)");
  Shape shape = in[0].shape;
  if (shape[1] >= 0) {
    if (shape[1] % 2) fail(node, fmt::format("axis 1 has {} channels, not real and imaginary halves", shape[1]));
    shape[1] /= 2;
  }
  return {{shape, DType::f32}};
}

// (outer, 2, channels x inner): the layout both directions walk.
struct Halves {
  int64_t outer, half;  // half: C x (product of the dims after axis 1)
};
Halves halves(const Shape& x) {
  int64_t inner = 1;
  for (int axis = 2; axis < x.rank(); ++axis) inner *= x[axis];
  return {x[0], x[1] / 2 * inner};
}

void forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  if (x.shape()[1] % 2) fail(c.node, "axis 1 is not real and imaginary halves");
  Shape shape = x.shape();
  shape[1] /= 2;
  Tensor y = Tensor::uninitialized(shape, DType::f32);
  const Halves h = halves(x.shape());
  const float* xd = f32(x);
  float* yd = f32(y);
  parallel_for(0, h.outer, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const float *re = xd + n * 2 * h.half, *im = re + h.half;
      float* out = yd + n * h.half;
      for (int64_t i = 0; i < h.half; ++i) out[i] = std::sqrt(re[i] * re[i] + im[i] * im[i]);
    }
  });
  c.outputs[0] = y;
}

void backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor x = c.inputs[0].contiguous(), y = c.outputs[0].contiguous(), g = c.grad_outputs[0].contiguous();
  Tensor dx = new_like(x);
  const Halves h = halves(x.shape());
  const float *xd = f32(x), *yd = f32(y), *gd = f32(g);
  float* dd = f32(dx);
  for (int64_t n = 0; n < h.outer; ++n)
    for (int64_t i = 0; i < h.half; ++i) {
      const int64_t o = n * h.half + i, re = n * 2 * h.half + i, im = re + h.half;
      const float scale = yd[o] > 0 ? gd[o] / yd[o] : 0.f;
      dd[re] = xd[re] * scale;
      dd[im] = xd[im] * scale;
    }
  c.grad_inputs[0] = dx;
}

}  // namespace

extern const OpRules complex_magnitude_rules{"ComplexMagnitude", infer, forward, backward};

}  // namespace shrink::nn::ops
