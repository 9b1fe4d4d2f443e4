// fp32 GEMM and Gram matrix (syrk) through OpenBLAS (loaded by openblas.cpp with the right core
// type). OpenBLAS runs single-threaded; shrink splits the larger output dimension over its own
// OpenMP workers. Two thread pools on the same cores (OpenBLAS's pthreads yielding, OpenMP's
// spinning) cost ~2x in training steps that mix GEMMs with shrink's own parallel loops.

#include <algorithm>
#include <mutex>

#include "kernels/kernel_variants.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/openblas.h"

namespace shrink::kernel_variants {
namespace {

void sgemm_one_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                      float* c, int64_t ldc) {
  constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
  openblas().sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, int(m),
                   int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

}  // namespace

// One call on the calling thread (the caller splits the triangle: compress/gptq.cpp).
void syrk_f32__openblas(int64_t n, int64_t k, const float* a, int64_t lda, float* c, int64_t ldc) {
  constexpr int kRowMajor = 101, kUpper = 121, kTrans = 112;
  openblas().ssyrk(kRowMajor, kUpper, kTrans, int(n), int(k), 1.f, a, int(lda), 1.f, c, int(ldc));
}

void gemm_f32__openblas(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                        float* c, int64_t ldc) {
  static std::once_flag single_threaded;
  std::call_once(single_threaded, [] {
    if (openblas().set_num_threads) openblas().set_num_threads(1);
  });
  const int threads = in_parallel_for() ? 1 : num_threads();
  // A few rows times a weight matrix stored (n, k) (decoding: one token times every Linear):
  // sgemv per row over column blocks reads the weights once, where sgemm would first copy them
  // into its packed layout on every call.
  if (m <= 4 && trans_b && openblas().sgemv && n >= 64) {
    constexpr int kRowMajor = 101, kNoTrans = 111;
    const int64_t block = std::max<int64_t>(64, (n + threads * 4 - 1) / (threads * 4));
    parallel_for(0, (n + block - 1) / block, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t part = lo; part < hi; ++part) {
        int64_t col = part * block, cols = std::min(block, n - col);
        for (int64_t i = 0; i < m; ++i)
          openblas().sgemv(kRowMajor, kNoTrans, int(cols), int(k), alpha, b + col * ldb, int(ldb),
                           trans_a ? a + i : a + i * lda, trans_a ? int(lda) : 1, beta, c + i * ldc + col, 1);
      }
    });
    return;
  }
  // One row times a matrix stored (k, n) (decoding's attention: probabilities times the cached
  // values): C = B^T a is one sgemv, where sgemm would pack B first.
  if (m == 1 && !trans_b && openblas().sgemv && threads == 1) {
    constexpr int kRowMajor = 101, kTrans = 112;
    if (beta == 0.f) std::fill(c, c + n, 0.f);  // C may hold garbage; 0 * NaN would keep it
    openblas().sgemv(kRowMajor, kTrans, int(k), int(n), alpha, b, int(ldb), a, trans_a ? int(lda) : 1, beta, c, 1);
    return;
  }
  // Below ~2 MFLOP a split costs more than it saves.
  if (threads == 1 || m * n * k < (int64_t(1) << 20) || (m < 32 && n < 32)) {
    sgemm_one_thread(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  if (m >= n) {  // rows of C (and of op(A))
    const int64_t block = (m + threads * 8 - 1) / (threads * 8) * 8;
    parallel_for(0, (m + block - 1) / block, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t part = lo; part < hi; ++part) {
        int64_t r = part * block, rows = std::min(block, m - r);
        sgemm_one_thread(trans_a, trans_b, rows, n, k, alpha, trans_a ? a + r : a + r * lda, lda, b,
                         ldb, beta, c + r * ldc, ldc);
      }
    });
  } else {  // columns of C (and of op(B))
    const int64_t block = (n + threads * 16 - 1) / (threads * 16) * 16;
    parallel_for(0, (n + block - 1) / block, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t part = lo; part < hi; ++part) {
        int64_t col = part * block, cols = std::min(block, n - col);
        sgemm_one_thread(trans_a, trans_b, m, cols, k, alpha, a, lda, trans_b ? b + col * ldb : b + col,
                         ldb, beta, c + col, ldc);
      }
    });
  }
}

}  // namespace shrink::kernel_variants
