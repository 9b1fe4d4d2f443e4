// Single-query attention (attend_f32, registry.h) with AVX2: four keys' scores per pass (one
// horizontal reduction for all four), exp through exp_f32__avx2, and the weighted sum of the
// values with 64 output values held in eight accumulators. Dimensions not a multiple of 8 use
// the reference.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/avx2/horizontal.h"
#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {
namespace {

using namespace avx2;

// The dot products of q with keys j .. j+3 (rows `stride` apart), dim a multiple of 8.
inline __m128 four_scores(const float* q, const float* k, int64_t stride, int64_t dim) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t d = 0; d < dim; d += 8) {
    const __m256 qd = _mm256_loadu_ps(q + d);
    for (int i = 0; i < 4; ++i) acc[i] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + i * stride + d), acc[i]);
  }
  return sum_four(acc);
}

inline float one_score(const float* q, const float* k, int64_t dim) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t d = 0; d < dim; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), acc);
  return horizontal_sum(acc);
}

}  // namespace

void attend_f32__avx2(int64_t queries, const float* q, int64_t q_stride, const float* k, const float* v, int64_t kv_stride,
                      int64_t length, int64_t dim, float scale, float* y, int64_t y_stride, float* scratch, float* lse) {
  if (dim % 8) return attend_f32__ref(queries, q, q_stride, k, v, kv_stride, length, dim, scale, y, y_stride, scratch, lse);
  for (int64_t r = 0; r < queries; ++r) {
    float* p = scratch + r * length;
    const float* qr = q + r * q_stride;
    const __m128 scale4 = _mm_set1_ps(scale);
    int64_t j = 0;
    for (; j + 4 <= length; j += 4) _mm_storeu_ps(p + j, _mm_mul_ps(four_scores(qr, k + j * kv_stride, kv_stride, dim), scale4));
    for (; j < length; ++j) p[j] = one_score(qr, k + j * kv_stride, dim) * scale;
    const float top = *std::max_element(p, p + length);
    for (j = 0; j < length; ++j) p[j] -= top;
    exp_f32__avx2(p, p, length);
    float sum = 0.f;
    for (j = 0; j < length; ++j) sum += p[j];
    if (lse) lse[r] = top + std::log(sum);
    const float inverse = 1.f / sum;
    float* yr = y + r * y_stride;
    for (int64_t d0 = 0; d0 < dim; d0 += 64) {  // up to 64 output values in registers
      const int64_t width = std::min<int64_t>(64, dim - d0);
      __m256 acc[8];
      for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
      for (j = 0; j < length; ++j) {
        const __m256 pj = _mm256_set1_ps(p[j] * inverse);
        const float* vj = v + j * kv_stride + d0;
        for (int i = 0; i < 8; ++i)
          if (8 * i < width) acc[i] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * i), acc[i]);
      }
      for (int i = 0; i < 8; ++i)
        if (8 * i < width) _mm256_storeu_ps(yr + d0 + 8 * i, acc[i]);
    }
  }
}

}  // namespace shrink::kernel_variants
