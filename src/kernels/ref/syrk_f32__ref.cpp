// The scalar Gram matrix: the oracle for every other syrk_f32 variant (and the last fallback).
#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {

void syrk_f32__ref(int64_t n, int64_t k, const float* a, int64_t lda, float* c, int64_t ldc) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) {
      float sum = 0.f;
      for (int64_t p = 0; p < k; ++p) sum += a[p * lda + i] * a[p * lda + j];
      c[i * ldc + j] += sum;
    }
}

}  // namespace shrink::kernel_variants
