// The body of single-query attention over the half-precision KV cache (attend_f16kv, registry.h),
// for any vector width: `L` supplies the lanes (Lanes8 in the AVX2 file, Lanes16 in the AVX-512
// one). The keys come in blocks of 16 positions stored dimension-major, so a block's scores for
// all the queries of a kv head (SmolLM2: three) are plain multiply-adds: per dimension d, the
// block's 16 keys widened from f16 times each query's q[d] broadcast, no horizontal sums, every
// key read once for the group. Up to kShortPositions positions, every score first, then one
// softmax and one pass over the values (attend_group_short); past that, the online softmax of flash
// attention per block (exp(score - running max), the outputs rescaled when the maximum grew;
// 8-wide, shared) and the
// probability-weighted values: per W vectors of output dimensions, each value row widened once and
// added into every query's accumulators. The keys and values 64 positions ahead are prefetched (a
// long context's cache outgrows the L3 beside the weights, and stalled at each 4 KB page where the
// hardware streamer stops). Outputs are divided by their sums at the end. Include only from files
// compiled with the AVX2 flags or more (the softmax part uses AVX2 at any width).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/avx2/exp8.h"
#include "kernels/avx2/horizontal.h"
#include "shrink/kernels/registry.h"

namespace shrink::kernel_variants::f16kv {

static_assert(kKeyBlock == 16, "blocks of 16 positions");
constexpr int64_t kAhead = 4 * kKeyBlock;  // software prefetch distance, in positions

// scores[r][i] = scale * q_r . key i of the block at kb (16 positions, dimension-major), i < 16.
template <class L, int R>
void block_scores(const float* q, int64_t q_stride, const uint16_t* kb, int64_t dim, float scale,
                  float (&scores)[R][kKeyBlock]) {
  constexpr int kVecs = int(kKeyBlock) / L::kLanes;
  typename L::V acc[R][kVecs][2];  // query, lanes of the block, even / odd dimensions (two chains)
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < kVecs; ++h) acc[r][h][0] = acc[r][h][1] = L::zero();
  const auto step = [&](int64_t d, int e) {
    typename L::V k[kVecs];
    for (int h = 0; h < kVecs; ++h) k[h] = L::widen(kb + d * kKeyBlock + h * L::kLanes);
    for (int r = 0; r < R; ++r) {
      const typename L::V qd = L::broadcast(q + r * q_stride + d);
      for (int h = 0; h < kVecs; ++h) acc[r][h][e] = L::fmadd(qd, k[h], acc[r][h][e]);
    }
  };
  int64_t d = 0;
  for (; d + 2 <= dim; d += 2) step(d, 0), step(d + 1, 1);
  if (d < dim) step(d, 0);  // an odd width
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < kVecs; ++h) L::store(scores[r] + h * L::kLanes, L::scaled_sum(scale, acc[r][h][0], acc[r][h][1]));
}

template <class L> typename L::V value_lanes(const uint16_t* v) { return L::widen(v); }
template <class L> typename L::V value_lanes(const float* v) { return L::load(v); }

// y_r[0 .. W lanes) = alpha_r y_r + sum_{j < n} p[r][j] v[j][0 .. W lanes) for every query r (n <= N;
// values in f16 or f32); y_r is not read where alpha_r is 0 (the first block). Shared with
// attend_prompt_body.h.
template <class L, int R, int W, int N, class T>
void block_values(const float (&p)[R][N], const float (&alpha)[R], const T* v, int64_t v_stride, int64_t n, float* y,
                  int64_t y_stride) {
  typename L::V acc[R][W];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < W; ++i)
      acc[r][i] = alpha[r] != 0.f ? L::mul(L::set1(alpha[r]), L::load(y + r * y_stride + L::kLanes * i)) : L::zero();
  for (int64_t j = 0; j < n; ++j) {
    typename L::V vj[W];
    for (int i = 0; i < W; ++i) vj[i] = value_lanes<L>(v + j * v_stride + L::kLanes * i);
    for (int r = 0; r < R; ++r) {
      const typename L::V pj = L::broadcast(&p[r][j]);
      for (int i = 0; i < W; ++i) acc[r][i] = L::fmadd(pj, vj[i], acc[r][i]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < W; ++i) L::store(y + r * y_stride + L::kLanes * i, acc[r][i]);
}

// block_values over all dim output dimensions, W vectors at a time, then one at a time.
template <class L, int R, int N>
void values(const float (&p)[R][N], const float (&alpha)[R], const uint16_t* v, int64_t v_stride, int64_t n,
            int64_t dim, float* y, int64_t y_stride) {
  int64_t d = 0;
  for (; d + L::kValueWidth * L::kLanes <= dim; d += L::kValueWidth * L::kLanes)
    block_values<L, R, L::kValueWidth>(p, alpha, v + d, v_stride, n, y + d, y_stride);
  for (; d < dim; d += L::kLanes) block_values<L, R, 1>(p, alpha, v + d, v_stride, n, y + d, y_stride);
}

// Each query's outputs divided by its sum of exponentials l, and its log-sum-exp m + log l.
template <int R>
void finish(const float (&m)[R], const float (&l)[R], int64_t dim, float* y, int64_t y_stride, float* lse) {
  for (int r = 0; r < R; ++r) {
    if (lse) lse[r] = m[r] + std::log(l[r]);
    const float inv = 1.f / l[r];
    float* yr = y + r * y_stride;
    for (int64_t d = 0; d < dim; ++d) yr[d] *= inv;
  }
}

// The R queries at q (q_stride apart) over `length` positions; dim a multiple of L::kLanes.
template <class L, int R>
void attend_group(const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v, int64_t v_stride,
                  int64_t length, int64_t dim, float scale, float* y, int64_t y_stride, float* lse) {
  using namespace avx2;
  float m[R], l[R];
  for (int r = 0; r < R; ++r) m[r] = -INFINITY, l[r] = 0.f;
  alignas(64) float p[R][kKeyBlock];
  for (int64_t j0 = 0; j0 < length; j0 += kKeyBlock) {
    const int64_t n = std::min(kKeyBlock, length - j0);
    if (j0 + kAhead < length) {  // the keys and values kAhead positions on, one line at a time
      const char* kf = reinterpret_cast<const char*>(k + (j0 + kAhead) * dim);
      for (int64_t b = 0; b < kKeyBlock * dim * 2; b += 64) _mm_prefetch(kf + b, _MM_HINT_T0);
      const char* vf = reinterpret_cast<const char*>(v + (j0 + kAhead) * v_stride);
      for (int64_t b = 0; b < kKeyBlock * v_stride * 2; b += 64) _mm_prefetch(vf + b, _MM_HINT_T0);
    }
    block_scores<L, R>(q, q_stride, k + j0 * dim, dim, scale, p);
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
    values<L, R>(p, alpha, v + j0 * v_stride, v_stride, n, dim, y, y_stride);
  }
  finish<R>(m, l, dim, y, y_stride, lse);
}

// Contexts up to this many positions take two passes (attend_group_short).
constexpr int64_t kShortPositions = 128;

// attend_group for length <= kShortPositions: every score first, then one softmax over them all
// and one pass over the values, whose sums stay in registers from the first position to the last.
// The online form's per-block work (a scalar exp and two horizontal reductions a query, the outputs
// loaded, rescaled and stored again) is gone. SmolLM2's 9 query heads over 3 kv heads, 64 dims,
// hot, alternating in one process on the Zen 4 host: 1.28-1.37x as fast at 58 positions, 1.31-1.46x
// at 90, 1.28-1.46x at 128, 1.10-1.17x at 32 with AVX-512; 1.11-1.13x from 58 up with AVX2.
// Longer contexts keep the online form, whose blocks prefetch the keys and values ahead.
template <class L, int R>
void attend_group_short(const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v, int64_t v_stride,
                        int64_t length, int64_t dim, float scale, float* y, int64_t y_stride, float* lse) {
  alignas(64) float p[R][kShortPositions];
  alignas(64) float block[R][kKeyBlock];
  for (int64_t j0 = 0; j0 < length; j0 += kKeyBlock) {
    block_scores<L, R>(q, q_stride, k + j0 * dim, dim, scale, block);
    for (int r = 0; r < R; ++r)
      for (int64_t h = 0; h < kKeyBlock; h += L::kLanes) L::store(p[r] + j0 + h, L::load(block[r] + h));
  }
  const int64_t padded = (length + L::kLanes - 1) / L::kLanes * L::kLanes;
  float l[R], m[R];
  for (int r = 0; r < R; ++r) {
    typename L::V top = L::set1(-INFINITY);
    for (int64_t j = 0; j < padded; j += L::kLanes) top = L::max(top, L::below(L::load(p[r] + j), length - j));
    m[r] = L::reduce_max(top);
    const typename L::V m_v = L::set1(m[r]);
    typename L::V sum = L::zero();
    for (int64_t j = 0; j < padded; j += L::kLanes) {
      const typename L::V e = L::exp(L::sub(L::below(L::load(p[r] + j), length - j), m_v));
      L::store(p[r] + j, e);
      sum = L::add(sum, e);
    }
    l[r] = L::reduce_sum(sum);
  }
  const float no_rescale[R] = {};  // block_values starts each query's sums at zero
  values<L, R>(p, no_rescale, v, v_stride, length, dim, y, y_stride);
  finish<R>(m, l, dim, y, y_stride, lse);
}

using Group = void (*)(const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v, int64_t v_stride,
                      int64_t length, int64_t dim, float scale, float* y, int64_t y_stride, float* lse);

template <class L, int R>
Group group_kernel_for(int64_t length) {
  return length <= kShortPositions ? attend_group_short<L, R> : attend_group<L, R>;
}

// The kernel for `queries` (1 to 4) queries over `length` positions.
template <class L>
Group group_kernel(int64_t queries, int64_t length) {
  switch (queries) {
    case 1: return group_kernel_for<L, 1>(length);
    case 2: return group_kernel_for<L, 2>(length);
    case 3: return group_kernel_for<L, 3>(length);
    default: return group_kernel_for<L, 4>(length);
  }
}

// attend_f16kv for dim % L::kLanes == 0 and length > 0: the queries in groups of up to four.
template <class L>
void attend(int64_t queries, const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v, int64_t v_stride,
            int64_t length, int64_t dim, float scale, float* y, int64_t y_stride, float* lse) {
  for (int64_t r0 = 0; r0 < queries; r0 += 4) {
    const float* qr = q + r0 * q_stride;
    float* yr = y + r0 * y_stride;
    float* lr = lse ? lse + r0 : nullptr;
    const Group group = group_kernel<L>(std::min<int64_t>(4, queries - r0), length);
    group(qr, q_stride, k, v, v_stride, length, dim, scale, yr, y_stride, lr);
  }
}

}  // namespace shrink::kernel_variants::f16kv
