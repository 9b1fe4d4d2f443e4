// Single-query attention (attend_f32, registry.h) with AVX2, in one pass over the positions with
// the softmax kept online (as flash attention does): per chunk of 64 positions and per query, the
// scores of eight keys at a time (eight independent accumulator chains, one tree of horizontal
// adds for all eight), exp(score - running max) with exp8.h's exp, and the probability-weighted
// sum of the chunk's values added to the query's output (up to 64 values in registers), which is
// first rescaled when the maximum grew; each output is divided by its sum at the end. All queries
// run over a chunk before the next chunk, so its keys and values (16 KB each at dim 64) come from
// memory for a kv head's first query and from L1 for the others (SmolLM2 has three per kv head).
// `scratch` is not used. Dimensions not a multiple of 8 use the reference.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/avx2/exp8.h"
#include "kernels/avx2/horizontal.h"
#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {
namespace {

using namespace avx2;

// The dot products of q with keys j .. j+7 (rows `stride` apart), in that order; dim a multiple of 8.
inline __m256 eight_scores(const float* q, const float* k, int64_t stride, int64_t dim) {
  __m256 acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t d = 0; d < dim; d += 8) {
    const __m256 qd = _mm256_loadu_ps(q + d);
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + i * stride + d), acc[i]);
  }
  // hadd pairs neighbours within each 128-bit half: after two rounds lane i of the low half holds
  // row i's (i < 4) or row i+4's sum of columns 0-3 of each 8, the high half the same of columns 4-7.
  const __m256 h0123 = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
  const __m256 h4567 = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]), _mm256_hadd_ps(acc[6], acc[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
}

inline float one_score(const float* q, const float* k, int64_t dim) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t d = 0; d < dim; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), acc);
  return horizontal_sum(acc);
}

// y[0 .. 8W) = alpha y[0 .. 8W) + sum_j p[j] v[j][0 .. 8W), W vectors of accumulators; y is not
// read when alpha is 0 (the first chunk, or earlier terms whose weight underflowed to 0).
template <int W>
void weighted_values(const float* p, const float* v, int64_t stride, int64_t length, float alpha, float* y) {
  __m256 acc[W];
  const __m256 a = _mm256_set1_ps(alpha);
  for (int i = 0; i < W; ++i) acc[i] = alpha != 0.f ? _mm256_mul_ps(a, _mm256_loadu_ps(y + 8 * i)) : _mm256_setzero_ps();
  for (int64_t j = 0; j < length; ++j) {
    const __m256 pj = _mm256_broadcast_ss(p + j);
    const float* vj = v + j * stride;
    for (int i = 0; i < W; ++i) acc[i] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * i), acc[i]);
  }
  for (int i = 0; i < W; ++i) _mm256_storeu_ps(y + 8 * i, acc[i]);
}

void weighted_values_any(const float* p, const float* v, int64_t stride, int64_t length, int64_t dim, float alpha,
                         float* y) {
  for (int64_t d0 = 0; d0 < dim; d0 += 64) {
    const float* vd = v + d0;
    float* yd = y + d0;
    switch (std::min<int64_t>(64, dim - d0) / 8) {
      case 1: weighted_values<1>(p, vd, stride, length, alpha, yd); break;
      case 2: weighted_values<2>(p, vd, stride, length, alpha, yd); break;
      case 3: weighted_values<3>(p, vd, stride, length, alpha, yd); break;
      case 4: weighted_values<4>(p, vd, stride, length, alpha, yd); break;
      case 5: weighted_values<5>(p, vd, stride, length, alpha, yd); break;
      case 6: weighted_values<6>(p, vd, stride, length, alpha, yd); break;
      case 7: weighted_values<7>(p, vd, stride, length, alpha, yd); break;
      default: weighted_values<8>(p, vd, stride, length, alpha, yd); break;
    }
  }
}

}  // namespace

void attend_f32__avx2(int64_t queries, const float* q, int64_t q_stride, const float* k, const float* v, int64_t kv_stride,
                      int64_t length, int64_t dim, float scale, float* y, int64_t y_stride, float* scratch, float* lse) {
  if (dim % 8 || length == 0)
    return attend_f32__ref(queries, q, q_stride, k, v, kv_stride, length, dim, scale, y, y_stride, scratch, lse);
  constexpr int64_t kChunk = 64, kQueries = 16;
  const __m256 scale8 = _mm256_set1_ps(scale);
  for (int64_t r0 = 0; r0 < queries; r0 += kQueries) {
    const int64_t nq = std::min(kQueries, queries - r0);
    float m[kQueries], l[kQueries];
    for (int64_t r = 0; r < nq; ++r) m[r] = -INFINITY, l[r] = 0.f;
    alignas(32) float s[kChunk];
    for (int64_t c0 = 0; c0 < length; c0 += kChunk) {
      const int64_t c1 = std::min(c0 + kChunk, length), n = c1 - c0;
      for (int64_t r = 0; r < nq; ++r) {
        const float* qr = q + (r0 + r) * q_stride;
        __m256 top8 = _mm256_set1_ps(-INFINITY);
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) {
          const __m256 x = _mm256_mul_ps(eight_scores(qr, k + (c0 + j) * kv_stride, kv_stride, dim), scale8);
          _mm256_store_ps(s + j, x);
          top8 = _mm256_max_ps(top8, x);
        }
        float top = horizontal_max(top8);
        for (; j < n; ++j) top = std::max(top, s[j] = one_score(qr, k + (c0 + j) * kv_stride, dim) * scale);
        const float new_m = std::max(m[r], top);
        const float alpha = c0 == 0 ? 0.f : std::exp(m[r] - new_m);
        const __m256 m8 = _mm256_set1_ps(new_m);
        __m256 sum8 = _mm256_setzero_ps();
        for (j = 0; j + 8 <= n; j += 8) {
          const __m256 e = keep_nan<exp_saturating8>(_mm256_sub_ps(_mm256_load_ps(s + j), m8));
          _mm256_store_ps(s + j, e);
          sum8 = _mm256_add_ps(sum8, e);
        }
        float sum = horizontal_sum(sum8);
        for (; j < n; ++j) sum += s[j] = std::exp(s[j] - new_m);
        l[r] = l[r] * alpha + sum;
        m[r] = new_m;
        weighted_values_any(s, v + c0 * kv_stride, kv_stride, n, dim, alpha, y + (r0 + r) * y_stride);
      }
    }
    for (int64_t r = 0; r < nq; ++r) {
      if (lse) lse[r0 + r] = m[r] + std::log(l[r]);
      const __m256 inv = _mm256_set1_ps(1.f / l[r]);
      float* yr = y + (r0 + r) * y_stride;
      for (int64_t d = 0; d < dim; d += 8) _mm256_storeu_ps(yr + d, _mm256_mul_ps(_mm256_loadu_ps(yr + d), inv));
    }
  }
}

}  // namespace shrink::kernel_variants
