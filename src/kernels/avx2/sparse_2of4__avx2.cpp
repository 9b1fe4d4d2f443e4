// 2:4 sparse f32 product with AVX2: every 16 inputs of a weight row are 8 stored values and 2
// metadata bytes; a 256-entry table turns each byte into a vpermps index vector whose sign bits
// mark the pruned lanes, so the values expand to two dense 8-lane vectors (zeros in the pruned
// lanes) that meet the activations in plain FMAs. Rows of x in tiles of up to 4 share one
// expansion.
#include <immintrin.h>

#include <array>
#include <cstdint>

#include "kernels/avx2/horizontal.h"
#include "kernels/kernel_variants.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/sparse_2of4.h"

namespace shrink::kernel_variants {
namespace {
using avx2::horizontal_sum;

// Per metadata byte (two groups): the vpermps index of each of 8 lanes (which of the 4 values of
// the two groups lands there, plus `offset`), with the sign bit set on the pruned lanes, which a
// blend then zeroes (vpermps reads only the low 3 bits). 8 KB per table: both stay in L1.
struct Expansion {
  alignas(32) int32_t index[8];
};

constexpr std::array<Expansion, 256> make_table(int offset) {
  std::array<Expansion, 256> table{};
  for (int byte = 0; byte < 256; ++byte)
    for (int half = 0; half < 2; ++half) {
      const int nibble = (byte >> (4 * half)) & 15, first = nibble & 3, second = nibble >> 2;
      for (int p = 0; p < 4; ++p) {
        const bool is_first = p == first, is_second = p == second && second != first;
        const int32_t index = offset + 2 * half + (is_second ? 1 : 0);
        table[size_t(byte)].index[4 * half + p] = is_first || is_second ? index : int32_t(index | INT32_MIN);
      }
    }
  return table;
}
constexpr std::array<Expansion, 256> kLow = make_table(0), kHigh = make_table(4);

inline __m256 expand(__m256 values, const Expansion& e) {
  const __m256i index = _mm256_load_si256(reinterpret_cast<const __m256i*>(e.index));
  return _mm256_blendv_ps(_mm256_permutevar8x32_ps(values, index), _mm256_setzero_ps(), _mm256_castsi256_ps(index));
}

template <int ROWS>
void rows_times_weight_row(const float* x, int64_t ldx, const Sparse2of4Weights& w, int64_t c, float* result) {
  const float* values = w.values + c * w.k / 2;
  const uint8_t* meta = w.meta + c * w.k / 8;
  __m256 acc[ROWS][2];
  for (int r = 0; r < ROWS; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  int64_t j = 0;
  if constexpr (ROWS == 1) {  // two more accumulators: one row alone would wait on the FMA latency
    __m256 more[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (; j + 32 <= w.k; j += 32) {
      const __m256 v0 = _mm256_loadu_ps(values + j / 2), v1 = _mm256_loadu_ps(values + j / 2 + 8);
      acc[0][0] = _mm256_fmadd_ps(expand(v0, kLow[meta[j / 8]]), _mm256_loadu_ps(x + j), acc[0][0]);
      acc[0][1] = _mm256_fmadd_ps(expand(v0, kHigh[meta[j / 8 + 1]]), _mm256_loadu_ps(x + j + 8), acc[0][1]);
      more[0] = _mm256_fmadd_ps(expand(v1, kLow[meta[j / 8 + 2]]), _mm256_loadu_ps(x + j + 16), more[0]);
      more[1] = _mm256_fmadd_ps(expand(v1, kHigh[meta[j / 8 + 3]]), _mm256_loadu_ps(x + j + 24), more[1]);
    }
    acc[0][0] = _mm256_add_ps(acc[0][0], more[0]);
    acc[0][1] = _mm256_add_ps(acc[0][1], more[1]);
  }
  for (; j + 16 <= w.k; j += 16) {
    const __m256 v = _mm256_loadu_ps(values + j / 2);
    const __m256 low = expand(v, kLow[meta[j / 8]]), high = expand(v, kHigh[meta[j / 8 + 1]]);
    for (int r = 0; r < ROWS; ++r) {
      acc[r][0] = _mm256_fmadd_ps(low, _mm256_loadu_ps(x + r * ldx + j), acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(high, _mm256_loadu_ps(x + r * ldx + j + 8), acc[r][1]);
    }
  }
  if (j < w.k) {  // 8 inputs left (k is a multiple of 8)
    const __m256 v = _mm256_castps128_ps256(_mm_loadu_ps(values + j / 2));
    const __m256 low = expand(v, kLow[meta[j / 8]]);
    for (int r = 0; r < ROWS; ++r) acc[r][0] = _mm256_fmadd_ps(low, _mm256_loadu_ps(x + r * ldx + j), acc[r][0]);
  }
  for (int r = 0; r < ROWS; ++r) result[r] = horizontal_sum(_mm256_add_ps(acc[r][0], acc[r][1]));
}

}  // namespace

void gemm_f32_2of4__avx2(int64_t m, const float* x, int64_t ldx, const Sparse2of4Weights& w, const float* bias,
                         float* out, int64_t ldo) {
  parallel_for(0, w.n, 16, [&](int64_t first, int64_t last) {
    float result[4];
    for (int64_t c = first; c < last; ++c) {
      const float b = bias ? bias[c] : 0.f;
      int64_t i = 0;
      for (; i + 4 <= m; i += 4) {
        rows_times_weight_row<4>(x + i * ldx, ldx, w, c, result);
        for (int r = 0; r < 4; ++r) out[(i + r) * ldo + c] = result[r] + b;
      }
      for (; i < m; ++i) {
        rows_times_weight_row<1>(x + i * ldx, ldx, w, c, result);
        out[i * ldo + c] = result[0] + b;
      }
    }
  });
}

}  // namespace shrink::kernel_variants
