// Single-query attention over the half-precision KV cache (attend_f16kv, registry.h) with AVX2
// and F16C. The keys come in blocks of 16 positions stored dimension-major, so a block's scores
// for all the queries of a kv head (SmolLM2: three) are plain multiply-adds: per dimension d, the
// block's 16 keys (two 8-wide vectors widened from f16) times each query's q[d] broadcast, no
// horizontal sums, every key read once for the group. Then the online softmax of flash attention
// per block (exp(score - running max), the outputs rescaled when the maximum grew) and the
// probability-weighted values: per 32 output dimensions, each value row widened once and added
// into every query's accumulators. Outputs are divided by their sums at the end. Head widths not
// a multiple of 8 use the reference.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/avx2/exp8.h"
#include "kernels/avx2/horizontal.h"
#include "kernels/kernel_variants.h"
#include "shrink/kernels/registry.h"

namespace shrink::kernel_variants {
namespace {

using namespace avx2;

inline __m256 widen8(const uint16_t* x) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x))); }

// scores[r][i] = scale * q_r . key i of the block at kb (16 positions, dimension-major), i < 16.
template <int R>
void block_scores(const float* q, int64_t q_stride, const uint16_t* kb, int64_t dim, float scale,
                  float (&scores)[R][kKeyBlock]) {
  static_assert(kKeyBlock == 16, "two 8-wide vectors per block");
  __m256 acc[R][2][2];  // query, positions 0-7 / 8-15, even / odd dimensions (two chains each)
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < 2; ++h) acc[r][h][0] = acc[r][h][1] = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 2 <= dim; d += 2)
    for (int e = 0; e < 2; ++e) {
      const __m256 k0 = widen8(kb + (d + e) * kKeyBlock), k1 = widen8(kb + (d + e) * kKeyBlock + 8);
      for (int r = 0; r < R; ++r) {
        const __m256 qd = _mm256_broadcast_ss(q + r * q_stride + d + e);
        acc[r][0][e] = _mm256_fmadd_ps(qd, k0, acc[r][0][e]);
        acc[r][1][e] = _mm256_fmadd_ps(qd, k1, acc[r][1][e]);
      }
    }
  for (; d < dim; ++d) {  // an odd width
    const __m256 k0 = widen8(kb + d * kKeyBlock), k1 = widen8(kb + d * kKeyBlock + 8);
    for (int r = 0; r < R; ++r) {
      const __m256 qd = _mm256_broadcast_ss(q + r * q_stride + d);
      acc[r][0][0] = _mm256_fmadd_ps(qd, k0, acc[r][0][0]);
      acc[r][1][0] = _mm256_fmadd_ps(qd, k1, acc[r][1][0]);
    }
  }
  const __m256 s = _mm256_set1_ps(scale);
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < 2; ++h)
      _mm256_storeu_ps(scores[r] + 8 * h, _mm256_mul_ps(s, _mm256_add_ps(acc[r][h][0], acc[r][h][1])));
}

// y_r[0 .. 8W) = alpha_r y_r[0 .. 8W) + sum_{j < n} p[r][j] v[j][0 .. 8W) for every query r; y_r is
// not read where alpha_r is 0 (the first block).
template <int R, int W>
void block_values(const float (&p)[R][kKeyBlock], const float (&alpha)[R], const uint16_t* v, int64_t v_stride,
                  int64_t n, float* y, int64_t y_stride) {
  __m256 acc[R][W];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < W; ++i)
      acc[r][i] = alpha[r] != 0.f ? _mm256_mul_ps(_mm256_set1_ps(alpha[r]), _mm256_loadu_ps(y + r * y_stride + 8 * i))
                                  : _mm256_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    __m256 vj[W];
    for (int i = 0; i < W; ++i) vj[i] = widen8(v + j * v_stride + 8 * i);
    for (int r = 0; r < R; ++r) {
      const __m256 pj = _mm256_broadcast_ss(&p[r][j]);
      for (int i = 0; i < W; ++i) acc[r][i] = _mm256_fmadd_ps(pj, vj[i], acc[r][i]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < W; ++i) _mm256_storeu_ps(y + r * y_stride + 8 * i, acc[r][i]);
}

// Software prefetch distance: DRAM-resident caches (a long context's keys and values outgrow the
// L3 beside the weights) otherwise stall on the start of every 4 KB page, where the hardware
// streamer stops.
constexpr int64_t kAhead = 4 * kKeyBlock;

template <int R>
void attend_group(const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v, int64_t v_stride,
                  int64_t length, int64_t dim, float scale, float* y, int64_t y_stride, float* lse) {
  float m[R], l[R];
  for (int r = 0; r < R; ++r) m[r] = -INFINITY, l[r] = 0.f;
  alignas(32) float p[R][kKeyBlock];
  for (int64_t j0 = 0; j0 < length; j0 += kKeyBlock) {
    const int64_t n = std::min(kKeyBlock, length - j0);
    if (j0 + kAhead < length) {  // the keys and values kAhead positions on, one line at a time
      const char* kf = reinterpret_cast<const char*>(k + (j0 + kAhead) * dim);
      for (int64_t b = 0; b < kKeyBlock * dim * 2; b += 64) _mm_prefetch(kf + b, _MM_HINT_T0);
      const char* vf = reinterpret_cast<const char*>(v + (j0 + kAhead) * v_stride);
      for (int64_t b = 0; b < kKeyBlock * v_stride * 2; b += 64) _mm_prefetch(vf + b, _MM_HINT_T0);
    }
    block_scores<R>(q, q_stride, k + j0 * dim, dim, scale, p);
    float alpha[R];
    for (int r = 0; r < R; ++r) {
      for (int64_t j = n; j < kKeyBlock; ++j) p[r][j] = -INFINITY;  // past the last position
      const float top = horizontal_max(_mm256_max_ps(_mm256_load_ps(p[r]), _mm256_load_ps(p[r] + 8)));
      const float new_m = std::max(m[r], top);
      alpha[r] = j0 == 0 ? 0.f : std::exp(m[r] - new_m);
      const __m256 m8 = _mm256_set1_ps(new_m);
      const __m256 e0 = keep_nan<exp_saturating8>(_mm256_sub_ps(_mm256_load_ps(p[r]), m8));
      const __m256 e1 = keep_nan<exp_saturating8>(_mm256_sub_ps(_mm256_load_ps(p[r] + 8), m8));
      _mm256_store_ps(p[r], e0);
      _mm256_store_ps(p[r] + 8, e1);
      l[r] = l[r] * alpha[r] + horizontal_sum(_mm256_add_ps(e0, e1));
      m[r] = new_m;
    }
    const uint16_t* vb = v + j0 * v_stride;
    int64_t d = 0;
    // 32 dimensions at a time (with 3 queries one accumulator spills; 16 at a time was no faster).
    for (; d + 32 <= dim; d += 32) block_values<R, 4>(p, alpha, vb + d, v_stride, n, y + d, y_stride);
    for (; d < dim; d += 8) block_values<R, 1>(p, alpha, vb + d, v_stride, n, y + d, y_stride);
  }
  for (int r = 0; r < R; ++r) {
    if (lse) lse[r] = m[r] + std::log(l[r]);
    const __m256 inv = _mm256_set1_ps(1.f / l[r]);
    float* yr = y + r * y_stride;
    for (int64_t d = 0; d < dim; d += 8) _mm256_storeu_ps(yr + d, _mm256_mul_ps(_mm256_loadu_ps(yr + d), inv));
  }
}

}  // namespace

void attend_f16kv__avx2(int64_t queries, const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v,
                        int64_t v_stride, int64_t length, int64_t dim, float scale, float* y, int64_t y_stride,
                        float* scratch, float* lse) {
  if (dim % 8 || length == 0)
    return attend_f16kv__ref(queries, q, q_stride, k, v, v_stride, length, dim, scale, y, y_stride, scratch, lse);
  for (int64_t r0 = 0; r0 < queries; r0 += 4) {
    const float* qr = q + r0 * q_stride;
    float* yr = y + r0 * y_stride;
    float* lr = lse ? lse + r0 : nullptr;
    switch (std::min<int64_t>(4, queries - r0)) {
      case 1: attend_group<1>(qr, q_stride, k, v, v_stride, length, dim, scale, yr, y_stride, lr); break;
      case 2: attend_group<2>(qr, q_stride, k, v, v_stride, length, dim, scale, yr, y_stride, lr); break;
      case 3: attend_group<3>(qr, q_stride, k, v, v_stride, length, dim, scale, yr, y_stride, lr); break;
      default: attend_group<4>(qr, q_stride, k, v, v_stride, length, dim, scale, yr, y_stride, lr); break;
    }
  }
}

}  // namespace shrink::kernel_variants
