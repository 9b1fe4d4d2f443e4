// fp32 GEMM through OpenBLAS (loaded by openblas.cpp with the right core type).
#include <atomic>

#include "kernels/kernel_variants.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/openblas.h"

namespace shrink::kernel_variants {

void gemm_f32__openblas(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                        float* c, int64_t ldc) {
  constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
  const OpenBlas& blas = openblas();
  static std::atomic<int> blas_threads = 0;  // follow set_num_threads() after loading
  if (const int threads = num_threads(); blas.set_num_threads && blas_threads.exchange(threads) != threads)
    blas.set_num_threads(threads);
  blas.sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, int(m),
                   int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

}  // namespace shrink::kernel_variants
