// The scalar fp32 GEMM: the oracle for every other gemm_f32 variant (and the last fallback).
#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {

void gemm_f32__ref(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                   int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float sum = 0.f;
      for (int64_t p = 0; p < k; ++p) {
        const float a_ip = trans_a ? a[p * lda + i] : a[i * lda + p];
        const float b_pj = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        sum += a_ip * b_pj;
      }
      float& out = c[i * ldc + j];
      out = alpha * sum + (beta == 0.f ? 0.f : beta * out);  // beta 0 ignores C (BLAS rule)
    }
  }
}

}  // namespace shrink::kernel_variants
