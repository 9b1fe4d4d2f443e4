// The int8 path with AVX2: per-row u8 quantization, and u8 x s8 GEMM on 6 x 16 tiles with
// vpmaddubsw + vpmaddwd (exact: 7-bit activations cannot saturate the int16 pair sums).
// Tiles are 6 rows x 16 channels: 12 accumulators, 2 weight vectors, 1 activation, 1 product
// (the full tile's loop is written in assembly: tile_x16.h).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/avx2/horizontal.h"
#include "kernels/avx2/tile_x16.h"
#include "kernels/kernel_variants.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/cpu.h"
#include "shrink/kernels/int8_gemm.h"

namespace shrink::kernel_variants {
namespace {

using namespace avx2;

// 8 floats (already integral and clamped to [0, 255]) -> 8 bytes.
void store_8_bytes(uint8_t* out, __m256 v) {
  const __m256i i32 = _mm256_cvtps_epi32(v);
  const __m128i i16 = _mm_packus_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
  const __m128i u8 = _mm_packus_epi16(i16, i16);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), u8);
}

constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// The per-channel inputs of 8 consecutive channels, in registers (zero past the last channel).
struct Channels8 {
  __m256 scale, bias;
  __m256i col_sums;
  int64_t count;  // channels that exist, <= 8
};

Channels8 load_channels(const Int8Epilogue& e, int64_t c, int64_t n) {
  const int64_t count = std::min<int64_t>(8, n - c);
  if (count == 8)
    return {_mm256_loadu_ps(e.b_scale + c), e.bias ? _mm256_loadu_ps(e.bias + c) : _mm256_setzero_ps(),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.b_col_sums + c)), 8};
  // 8-wide loads would read past n: go through zero-padded copies
  alignas(32) float scale[8] = {}, bias[8] = {};
  alignas(32) int32_t sums[8] = {};
  std::memcpy(scale, e.b_scale + c, size_t(count) * 4);
  std::memcpy(sums, e.b_col_sums + c, size_t(count) * 4);
  if (e.bias) std::memcpy(bias, e.bias + c, size_t(count) * 4);
  return {_mm256_load_ps(scale), _mm256_load_ps(bias), _mm256_load_si256(reinterpret_cast<const __m256i*>(sums)),
          count};
}

// Epilogue for the 8 channels [c, c + 8) of row i (only `channels.count` of them are stored).
inline void finish_8(int64_t i, int64_t c, __m256i acc, const Int8Epilogue& e, const Channels8& channels) {
  const __m256i correction = _mm256_mullo_epi32(_mm256_set1_epi32(e.a_zero[i]), channels.col_sums);
  __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc, correction)),
                           _mm256_mul_ps(_mm256_set1_ps(e.a_scale[i]), channels.scale));
  v = _mm256_add_ps(v, channels.bias);
  if (e.relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
  if (e.out_f32) {
    if (channels.count == 8) {
      _mm256_storeu_ps(e.out_f32 + i * e.ldo + c, v);
    } else {
      alignas(32) float tmp[8];
      _mm256_store_ps(tmp, v);
      std::memcpy(e.out_f32 + i * e.ldo + c, tmp, size_t(channels.count) * 4);
    }
    return;
  }
  v = _mm256_add_ps(_mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(e.out_inverse_scale)), kRound),
                    _mm256_set1_ps(float(e.out_zero)));
  v = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(float(e.out_max)));
  uint8_t bytes[8];
  store_8_bytes(bytes, v);
  std::memcpy(e.out_u8 + i * e.ldo + c, bytes, size_t(channels.count));
}

static_assert(kInt8Panel == 16 && kInt8Group == 4, "tile_x16.h steps 64 bytes of weights and 4 activations");

// Rows [i, i + ROWS) x the 16 channels of one panel.
template <int ROWS>
void tile(int64_t i, int64_t panel, int64_t n, int64_t groups, const uint8_t* a, int64_t lda, const int8_t* packed,
          const Int8Epilogue& e) {
  alignas(32) __m256i acc[ROWS][2];
  for (int r = 0; r < ROWS; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  accumulate_x16<ROWS, /*ACTIVATIONS_UNSIGNED=*/true>(a + i * lda, lda,
                                                      packed + panel * groups * kInt8Panel * kInt8Group, groups, acc);
  for (int half = 0; half < 2; ++half) {
    const int64_t c = panel * kInt8Panel + 8 * half;
    if (c >= n) break;
    const Channels8 channels = load_channels(e, c, n);
    for (int r = 0; r < ROWS; ++r) finish_8(i + r, c, acc[r][half], e, channels);
  }
}

// One activation row (a GEMV) against two panels far apart in memory, p0 and p1: two sequential
// weight streams per core with a software prefetch 2 KB ahead in each keep more lines in flight
// than tile<1> walking one panel after another (cold 4096 x 4096 on 2 threads here: see
// docs/results.md).
void gemv_two_panels(int64_t p0, int64_t p1, int64_t n, int64_t groups, const uint8_t* a, const int8_t* packed,
                     const Int8Epilogue& e) {
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t panel_bytes = groups * kInt8Panel * kInt8Group;
  const int8_t* b[2] = {packed + p0 * panel_bytes, packed + p1 * panel_bytes};
  __m256i acc[2][2] = {{_mm256_setzero_si256(), _mm256_setzero_si256()}, {_mm256_setzero_si256(), _mm256_setzero_si256()}};
  for (int64_t g = 0; g < groups; ++g) {
    int32_t four;
    std::memcpy(&four, a + g * 4, 4);
    const __m256i x = _mm256_set1_epi32(four);
    for (int s = 0; s < 2; ++s) {
      const int8_t* at = b[s] + g * 64;
      _mm_prefetch(reinterpret_cast<const char*>(at + 2048), _MM_HINT_T0);
      for (int half = 0; half < 2; ++half) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + 32 * half));
        acc[s][half] = _mm256_add_epi32(acc[s][half], _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones));
      }
    }
  }
  const int64_t panel[2] = {p0, p1};
  for (int s = 0; s < 2; ++s)
    for (int half = 0; half < 2; ++half) {
      const int64_t c = panel[s] * kInt8Panel + 8 * half;
      if (c < n) finish_8(0, c, acc[s][half], e, load_channels(e, c, n));
    }
}

}  // namespace

void quantize_rows_u8__avx2(const float* x, int64_t m, int64_t k, int64_t ldx, uint8_t* q, int64_t ldq, float* scale,
                            int32_t* zero) {
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * ldx;
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= k; j += 8) {
      const __m256 v = _mm256_loadu_ps(row + j);
      lo = _mm256_min_ps(lo, v);
      hi = _mm256_max_ps(hi, v);
    }
    float row_lo = horizontal_min(lo), row_hi = horizontal_max(hi);
    for (; j < k; ++j) {
      row_lo = std::min(row_lo, row[j]);
      row_hi = std::max(row_hi, row[j]);
    }
    u8_row_qparams(row_lo, row_hi, scale[i], zero[i]);
    const float inverse = 1.f / scale[i];
    const __m256 inv = _mm256_set1_ps(inverse);
    uint8_t* out = q + i * ldq;
    // The zero and the clamp in integers (exact: the codes lie within the row's range, about
    // +-128), the signed saturating packs clamping at 127 and one max at 0: 32 codes a step, then 8.
    const __m256i zero_i = _mm256_set1_epi32(zero[i]);
    const auto codes_8 = [&](int64_t at) {
      return _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(row + at), inv), kRound)),
                              zero_i);
    };
    for (j = 0; j + 32 <= k; j += 32) {
      const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(codes_8(j), codes_8(j + 8)),
                                               _mm256_packs_epi32(codes_8(j + 16), codes_8(j + 24)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j),
                          _mm256_max_epi8(_mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)),
                                          _mm256_setzero_si256()));
    }
    for (; j + 8 <= k; j += 8) {
      const __m256i codes = codes_8(j);
      const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(codes), _mm256_extracti128_si256(codes, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + j), _mm_max_epi8(_mm_packs_epi16(words, words), _mm_setzero_si128()));
    }
    for (; j < k; ++j) out[j] = uint8_t(std::clamp(std::nearbyint(row[j] * inverse) + float(zero[i]), 0.f, 127.f));
    for (; j < ldq; ++j) out[j] = 0;
  }
}

void gemm_u8s8__avx2(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, const int8_t* packed_b,
                     const Int8Epilogue& e) {
  const int64_t groups = int8_padded_k(k) / kInt8Group, panels = (n + kInt8Panel - 1) / kInt8Panel;
  // Each thread takes a range of panels. Rows go in blocks of activations filling 3/4 of L2 that
  // stay there while the thread's panels pass over them; one panel (16 x k bytes) stays in L1 across
  // a block's row tiles. (1024^3 on one Zen 3 core: +4% over whole-m passes; 256 x 4096^2 equal.)
  const int64_t block_rows = std::max<int64_t>(6, (l2_cache_bytes() * 3 / 4 / std::max<int64_t>(lda, 1)) / 6 * 6);
  // Threads share the panels when each gets 64 panels' rows of work, or for one row (a GEMV, bound
  // by reading the weights) at least 64 KB of weights: 576 x 1536 went from one thread to two.
  const int64_t grain = m == 1 ? std::max<int64_t>(1, (64 << 10) / (groups * kInt8Panel * kInt8Group))
                               : std::max<int64_t>(1, 64 / std::max<int64_t>(m, 1));
  parallel_for(0, panels, grain, [&](int64_t first, int64_t last) {
    if (m == 1) {  // the share's first half beside its second half, then the odd panel out
      const int64_t half = (last - first) / 2;
      for (int64_t j = 0; j < half; ++j) gemv_two_panels(first + j, first + half + j, n, groups, a, packed_b, e);
      if ((last - first) % 2) tile<1>(0, last - 1, n, groups, a, lda, packed_b, e);
      return;
    }
    for (int64_t r0 = 0; r0 < m; r0 += block_rows) {
      const int64_t r1 = std::min(m, r0 + block_rows);
      for (int64_t panel = first; panel < last; ++panel) {
        int64_t i = r0;
        for (; i + 6 <= r1; i += 6) tile<6>(i, panel, n, groups, a, lda, packed_b, e);
        switch (r1 - i) {
          case 5: tile<5>(i, panel, n, groups, a, lda, packed_b, e); break;
          case 4: tile<4>(i, panel, n, groups, a, lda, packed_b, e); break;
          case 3: tile<3>(i, panel, n, groups, a, lda, packed_b, e); break;
          case 2: tile<2>(i, panel, n, groups, a, lda, packed_b, e); break;
          case 1: tile<1>(i, panel, n, groups, a, lda, packed_b, e); break;
          default: break;
        }
      }
    }
  });
}

}  // namespace shrink::kernel_variants
