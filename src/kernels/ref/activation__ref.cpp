// Scalar references of the element-wise functions: the C library's exp and tanh.
#include <cmath>

#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {

void sigmoid_f32__ref(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 1.f / (1.f + std::exp(-x[i]));
}

void exp_f32__ref(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

void tanh_f32__ref(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

}  // namespace shrink::kernel_variants
