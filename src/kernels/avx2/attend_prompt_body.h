// The body of a prompt's attention (attend_prompt_f32, registry.h) for any vector width: `L`
// supplies the lanes (Lanes8 in the AVX2 file, Lanes16 in the AVX-512 one). Flash attention in one
// pass: L::kPromptRows query rows at a time walk the keys they can see in steps of two vectors
// (32 keys with 16 lanes, 16 with 8); a step's scores are plain multiply-adds over the key blocks'
// dimension-major layout (per dimension, the step's keys times each row's q[d] broadcast), then the
// online softmax (the running maximum and sum per row, the output rescaled when the maximum grew)
// and the probability-weighted values (attend_f16kv_body.h's block_values, each value row loaded
// once for all the rows). The outputs stay in a buffer of rows x dim floats until they are divided
// by their sums at the end. Nothing goes through memory that the two GEMMs and the softmax passes
// of ops/attention.cpp's general path wrote and read back (scores, probabilities, packed copies).
// Include only from files compiled with the AVX2 flags or more.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/avx2/attend_f16kv_body.h"
#include "shrink/kernels/registry.h"

namespace shrink::kernel_variants::prompt {

constexpr int64_t kMaxDim = 256;  // head widths up to this run here (the callers fall back above)

// The keys and values a call reads.
struct Keys {
  const float* blocks;
  const float* v;
  int64_t v_stride, count, dim;
};

// R rows of the prompt on their way through the keys: their queries (times the scale, dimension-
// major [d][r], so that the broadcasts take one pointer: eight row pointers did not stay in
// registers), running maxima and sums, and unnormalized outputs (R x dim at `out`).
template <class L, int R>
struct RowGroup {
  static_assert(R <= L::kLanes, "one vector holds the rows' rescaling factors");
  static constexpr int64_t kStep = 2 * L::kLanes;  // keys a step
  alignas(64) float qt[kMaxDim * R];
  float m[R], l[R];
  int64_t diagonal = 0, last = 0;  // the first row sees keys < diagonal + 1, the last < last
  float* out = nullptr;

  void start(const float* q, int64_t q_stride, const Keys& k, float scale, int64_t first_diagonal, float* buffer) {
    diagonal = first_diagonal, last = std::min(k.count, first_diagonal + R), out = buffer;
    for (int r = 0; r < R; ++r) {
      m[r] = -INFINITY, l[r] = 0.f;
      for (int64_t d = 0; d < k.dim; ++d) qt[d * R + r] = scale * q[r * q_stride + d];
    }
  }

  // Keys [j0, j0 + kStep) (j0 a multiple of kStep), if the rows see any of them.
  void step(int64_t j0, const Keys& k) {
    using V = typename L::V;
    if (j0 >= last) return;
    const int64_t dim = k.dim;
    // The step's two vectors of keys at dimension 0 (dimension d: + d * kKeyBlock).
    const float* k0 = k.blocks + key_block_index(j0, 0, dim);
    const float* k1 = k.blocks + key_block_index(j0 + L::kLanes, 0, dim);
    V s[R][2];
    for (int r = 0; r < R; ++r) s[r][0] = s[r][1] = L::zero();
    for (int64_t d = 0; d < dim; ++d) {
      const V ka = L::load(k0 + d * kKeyBlock), kb = L::load(k1 + d * kKeyBlock);
      for (int r = 0; r < R; ++r) {
        const V qd = L::broadcast(qt + d * R + r);
        s[r][0] = L::fmadd(qd, ka, s[r][0]);
        s[r][1] = L::fmadd(qd, kb, s[r][1]);
      }
    }
    // The rows' new maxima (every row sees key 0, so they are finite from the first step on, NaN
    // aside), then the factors of their old sums and outputs in one vector exponential.
    float top[R];
    for (int r = 0; r < R; ++r) {
      const int64_t visible = std::min(k.count, diagonal + r + 1) - j0;  // of this step's keys
      if (visible < kStep) s[r][0] = L::below(s[r][0], visible), s[r][1] = L::below(s[r][1], visible - L::kLanes);
      top[r] = std::max(m[r], L::reduce_max(L::max(s[r][0], s[r][1])));
    }
    alignas(64) float alpha[R];
    if (j0 == 0) {
      std::fill(alpha, alpha + R, 0.f);
    } else {
      alignas(64) float lanes[L::kLanes] = {};
      for (int r = 0; r < R; ++r) lanes[r] = m[r] - top[r];
      L::store(lanes, L::exp(L::load(lanes)));
      std::copy(lanes, lanes + R, alpha);
    }
    alignas(64) float p[R][kStep];
    for (int r = 0; r < R; ++r) {
      const V a = L::exp(L::sub(s[r][0], L::set1(top[r]))), b = L::exp(L::sub(s[r][1], L::set1(top[r])));
      L::store(p[r], a);
      L::store(p[r] + L::kLanes, b);
      l[r] = l[r] * alpha[r] + L::reduce_sum(L::add(a, b));
      m[r] = top[r];
    }
    const int64_t n = std::min(kStep, last - j0);
    const float* vb = k.v + j0 * k.v_stride;
    int64_t d = 0;  // two vectors of dimensions a pass: 2R accumulators, the registers' half
    for (; d + 2 * L::kLanes <= dim; d += 2 * L::kLanes)
      f16kv::block_values<L, R, 2>(p, alpha, vb + d, k.v_stride, n, out + d, dim);
    for (; d < dim; d += L::kLanes) f16kv::block_values<L, R, 1>(p, alpha, vb + d, k.v_stride, n, out + d, dim);
  }

  void finish(float* y, int64_t y_stride, int64_t dim) const {
    for (int r = 0; r < R; ++r) {
      const float inverse = 1.f / l[r];
      for (int64_t d = 0; d < dim; ++d) y[r * y_stride + d] = out[r * dim + d] * inverse;
    }
  }
};

// GROUPS groups of R rows from row 0 (q, y at it; it sees keys < diagonal + 1), walking the keys
// side by side: the second group finds a step's keys and values in L1 where the first loaded them
// from L2 (a 700-position head's keys and values are 350 KB).
template <class L, int R, int GROUPS>
void attend_rows(const float* q, int64_t q_stride, const Keys& k, float scale, int64_t diagonal, float* y,
                 int64_t y_stride, float* out) {
  using Group = RowGroup<L, R>;
  Group groups[GROUPS];
  for (int g = 0; g < GROUPS; ++g)
    groups[g].start(q + g * R * q_stride, q_stride, k, scale, diagonal + g * R, out + g * R * k.dim);
  for (int64_t j0 = 0; j0 < groups[GROUPS - 1].last; j0 += Group::kStep)
    for (Group& group : groups) group.step(j0, k);
  for (int g = 0; g < GROUPS; ++g) groups[g].finish(y + g * R * y_stride, y_stride, k.dim);
}

// The last rows % kPromptRows rows: R of them, or fewer.
template <class L, int R>
void attend_tail(int64_t rows, const float* q, int64_t q_stride, const Keys& k, float scale, int64_t diagonal, float* y,
                 int64_t y_stride, float* out) {
  if constexpr (R > 0) {
    if (rows == R) return attend_rows<L, R, 1>(q, q_stride, k, scale, diagonal, y, y_stride, out);
    attend_tail<L, R - 1>(rows, q, q_stride, k, scale, diagonal, y, y_stride, out);
  }
}

// attend_prompt_f32 for dim % L::kLanes == 0 and dim <= kMaxDim.
template <class L>
void attend(int64_t rows, const float* q, int64_t q_stride, const float* key_blocks, const float* v, int64_t v_stride,
            int64_t keys, int64_t dim, float scale, int64_t diagonal, float* y, int64_t y_stride) {
  constexpr int R = L::kPromptRows;
  const Keys k{key_blocks, v, v_stride, keys, dim};
  alignas(64) float out[4 * R * kMaxDim];
  int64_t r0 = 0;
  for (; r0 + 4 * R <= rows; r0 += 4 * R)
    attend_rows<L, R, 4>(q + r0 * q_stride, q_stride, k, scale, diagonal + r0, y + r0 * y_stride, y_stride, out);
  for (; r0 + 2 * R <= rows; r0 += 2 * R)
    attend_rows<L, R, 2>(q + r0 * q_stride, q_stride, k, scale, diagonal + r0, y + r0 * y_stride, y_stride, out);
  for (; r0 + R <= rows; r0 += R)
    attend_rows<L, R, 1>(q + r0 * q_stride, q_stride, k, scale, diagonal + r0, y + r0 * y_stride, y_stride, out);
  attend_tail<L, R - 1>(rows - r0, q + r0 * q_stride, q_stride, k, scale, diagonal + r0, y + r0 * y_stride, y_stride,
                        out);
}

}  // namespace shrink::kernel_variants::prompt
