// Scalar references of the element-wise functions (the C library's exp and tanh) and of the LSTM
// cell built from them.
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

void lstm_cell_f32__ref(float* a, const float* rec, const float* c_prev, float* c, float* h_out, int64_t h) {
  for (int64_t j = 0; j < 4 * h; ++j) a[j] += rec[j];
  sigmoid_f32__ref(a, a, 2 * h);                  // i, f
  tanh_f32__ref(a + 2 * h, a + 2 * h, h);         // g
  sigmoid_f32__ref(a + 3 * h, a + 3 * h, h);      // o
  for (int64_t j = 0; j < h; ++j) c[j] = a[h + j] * c_prev[j] + a[j] * a[2 * h + j];
  for (int64_t j = 0; j < h; ++j) h_out[j] = a[3 * h + j] * std::tanh(c[j]);
}

}  // namespace shrink::kernel_variants
