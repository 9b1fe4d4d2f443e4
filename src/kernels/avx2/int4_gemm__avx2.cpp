// int4 x int8 with AVX2: vpmaddubsw (u4 weights x s8 activations) + vpmaddwd, per-group scale
// applied in f32. Prefill: nibbles unpacked once per 32 values and reused for up to 4 activation
// rows. Decode: see gemv.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/avx2/horizontal.h"
#include "kernels/avx2/int4_expand.h"
#include "kernels/avx2/int4_gemv.h"
#include "kernels/avx2/int4_gemv_row_blocks.h"
#include "kernels/avx2/tile_x16.h"
#include "kernels/kernel_variants.h"
#include "kernels/line_buffer.h"
#include "shrink/core/half.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink::kernel_variants {
namespace {

using namespace avx2;

// Rows [i, i + ROWS) of activations times weight row c.
template <int ROWS>
void column(int64_t i, int64_t c, const int8_t* q, const float* a_scale, const int32_t* group_sums,
            const Int4Weights& w, const float* bias, float* out, int64_t ldo) {
  const int64_t groups = w.k / w.group;
  const __m256i low_mask = _mm256_set1_epi8(0x0f), high_lane_shift = _mm256_set_epi64x(4, 4, 0, 0);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[ROWS];
  float acc_min[ROWS];
  for (int r = 0; r < ROWS; ++r) {
    acc[r] = _mm256_setzero_ps();
    acc_min[r] = 0.f;
  }
  const uint8_t* nibbles = w.nibbles + c * w.k / 2;
  for (int64_t g = 0; g < groups; ++g) {
    __m256i dot[ROWS];
    for (int r = 0; r < ROWS; ++r) dot[r] = _mm256_setzero_si256();
    for (int64_t j = g * w.group; j < (g + 1) * w.group; j += 32) {
      // Both halves from one broadcast load: the high lane shifted down 4 bits, then masked.
      const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(nibbles + j / 2)));
      const __m256i weights = _mm256_and_si256(_mm256_srlv_epi64(both, high_lane_shift), low_mask);
      for (int r = 0; r < ROWS; ++r) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + (i + r) * w.k + j));
        dot[r] = _mm256_add_epi32(dot[r], _mm256_madd_epi16(_mm256_maddubs_epi16(weights, a), ones));
      }
    }
    const __m256 scale = _mm256_set1_ps(_cvtsh_ss(w.scales[c * groups + g]));
    const float min = _cvtsh_ss(w.mins[c * groups + g]);
    for (int r = 0; r < ROWS; ++r) {
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[r]), scale, acc[r]);
      acc_min[r] += min * float(group_sums[(i + r) * groups + g]);
    }
  }
  for (int r = 0; r < ROWS; ++r)
    out[(i + r) * ldo + c] = a_scale[i + r] * (horizontal_sum(acc[r]) + acc_min[r]) + (bias ? bias[c] : 0.f);
}

// Prefill (many activation rows): each panel of 16 output channels is expanded once from nibbles
// into u8 laid out like the int8 path (int4_expand.h). Tiles of ROWS x 16 then run
// vpmaddubsw(weights, activations) over each quantization group and fold the group's s32 sums into
// f32 accumulators.
template <int ROWS>
void prefill_tile(int64_t i, int64_t c0, const ExpandedPanel& panel, const int8_t* q, const float* a_scale,
                  const float* float_sums, const Int4Weights& w, const float* bias, float* out, int64_t ldo) {
  const int64_t groups = w.k / w.group;
  alignas(32) float acc[ROWS][16] = {};
  for (int64_t g = 0; g < groups; ++g) {
    alignas(32) __m256i dot[ROWS][2];
    for (int r = 0; r < ROWS; ++r) dot[r][0] = dot[r][1] = _mm256_setzero_si256();
    // dot[r][half] += rows of q times the group's words (16 channels x 4 u8 weights each)
    accumulate_x16<ROWS, /*ACTIVATIONS_UNSIGNED=*/false>(q + (i * w.k + g * w.group), w.k,
                                                          panel.words.data() + g * w.group / 4 * 16, w.group / 4, dot);
    for (int half = 0; half < 2; ++half) {
      const __m256 scale = _mm256_loadu_ps(panel.scales.data() + g * 16 + 8 * half);
      const __m256 min = _mm256_loadu_ps(panel.mins.data() + g * 16 + 8 * half);
      for (int r = 0; r < ROWS; ++r) {
        __m256 v = _mm256_load_ps(acc[r] + 8 * half);
        v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[r][half]), scale, v);
        v = _mm256_fmadd_ps(min, _mm256_set1_ps(float_sums[(i + r) * groups + g]), v);
        _mm256_store_ps(acc[r] + 8 * half, v);
      }
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int64_t channel = 0; channel < 16 && c0 + channel < w.n; ++channel)
      out[(i + r) * ldo + c0 + channel] = a_scale[i + r] * acc[r][channel] + (bias ? bias[c0 + channel] : 0.f);
}

void prefill(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
             const float* bias, float* out, int64_t ldo) {
  const int64_t groups = w.k / w.group;
  std::vector<float> float_sums(static_cast<size_t>(m * groups));
  for (size_t e = 0; e < float_sums.size(); ++e) float_sums[e] = float(group_sums[e]);
  parallel_for(0, (w.n + 15) / 16, 1, [&](int64_t first, int64_t last) {
    ExpandedPanel panel;
    panel.resize(w, 1);
    for (int64_t p = first; p < last; ++p) {
      expand_panel(w, 16 * p, panel.words.data(), panel.scales.data(), panel.mins.data());
      int64_t i = 0;
      for (; i + 6 <= m; i += 6) prefill_tile<6>(i, 16 * p, panel, q, a_scale, float_sums.data(), w, bias, out, ldo);
      for (; i + 2 <= m; i += 2) prefill_tile<2>(i, 16 * p, panel, q, a_scale, float_sums.data(), w, bias, out, ldo);
      for (; i < m; ++i) prefill_tile<1>(i, 16 * p, panel, q, a_scale, float_sums.data(), w, bias, out, ldo);
    }
  });
}

// 32 nibbles (16 bytes, ggml order) -> 4 x 8 floats in value order.
void unpack_32(const uint8_t* nibbles, __m256 out[4]) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(nibbles));
  const __m128i low_mask = _mm_set1_epi8(0x0f);
  const __m128i low = _mm_and_si128(packed, low_mask), high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_mask);
  out[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(low));
  out[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(low, 8)));
  out[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(high));
  out[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(high, 8)));
}

// One activation row times weight row c; x_sums holds each group's sum of x.
float q4f32_dot(const float* x, const float* x_sums, const Int4Weights& w, int64_t c) {
  const int64_t groups = w.k / w.group;
  const uint8_t* nibbles = w.nibbles + c * w.k / 2;
  __m256 acc = _mm256_setzero_ps();
  float min_part = 0.f;
  for (int64_t g = 0; g < groups; ++g) {
    __m256 dot = _mm256_setzero_ps();
    for (int64_t j = g * w.group; j < (g + 1) * w.group; j += 32) {
      __m256 q[4];
      unpack_32(nibbles + j / 2, q);
      for (int p = 0; p < 4; ++p) dot = _mm256_fmadd_ps(q[p], _mm256_loadu_ps(x + j + 8 * p), dot);
    }
    acc = _mm256_fmadd_ps(dot, _mm256_set1_ps(_cvtsh_ss(w.scales[c * groups + g])), acc);
    min_part += _cvtsh_ss(w.mins[c * groups + g]) * x_sums[g];
  }
  return horizontal_sum(acc) + min_part;
}

}  // namespace

void gemm_q4f32__avx2(int64_t m, const float* x, const Int4Weights& w, const float* bias, float* out, int64_t ldo) {
  const int64_t groups = w.k / w.group;
  std::vector<float> x_sums(static_cast<size_t>(m * groups));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t g = 0; g < groups; ++g) {
      __m256 sum = _mm256_setzero_ps();
      for (int64_t j = g * w.group; j < (g + 1) * w.group; j += 8) sum = _mm256_add_ps(sum, _mm256_loadu_ps(x + i * w.k + j));
      x_sums[size_t(i * groups + g)] = horizontal_sum(sum);
    }
  parallel_for(0, w.n, 16, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c)
      for (int64_t i = 0; i < m; ++i)
        out[i * ldo + c] = q4f32_dot(x + i * w.k, x_sums.data() + i * groups, w, c) + (bias ? bias[c] : 0.f);
  });
}

void quantize_int4__avx2(const float* w, int64_t n, int64_t k, int64_t group, uint8_t* nibbles, uint16_t* scales,
                         uint16_t* mins) {
  const int64_t groups = k / group;
  for (int64_t row = 0; row < n; ++row)
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = w + row * k + g * group;
      __m256 lo_v = _mm256_loadu_ps(x), hi_v = lo_v;
      for (int64_t j = 8; j < group; j += 8) {
        const __m256 v = _mm256_loadu_ps(x + j);
        lo_v = _mm256_min_ps(lo_v, v);
        hi_v = _mm256_max_ps(hi_v, v);
      }
      float scale, zero;
      int4_group_qparams(horizontal_min(lo_v), horizontal_max(hi_v), scale, zero);
      scales[row * groups + g] = f32_to_f16(scale);
      mins[row * groups + g] = f32_to_f16(-zero * scale);
      const __m256 scale_v = _mm256_set1_ps(scale), zero_v = _mm256_set1_ps(zero);
      const __m256 fifteen = _mm256_set1_ps(15.f), nothing = _mm256_setzero_ps();
      for (int64_t j = 0; j < group; j += 32) {
        __m256i q[4];
        for (int p = 0; p < 4; ++p) {
          const __m256 v = _mm256_add_ps(_mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + j + 8 * p), scale_v),
                                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zero_v);
          q[p] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, nothing), fifteen));
        }
        // 32 values 0..15 -> bytes in order, then low nibbles from values 0-15, high from 16-31.
        const __m256i bytes = _mm256_permutevar8x32_epi32(
            _mm256_packus_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])),
            _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        const __m128i low = _mm256_castsi256_si128(bytes), high = _mm256_extracti128_si256(bytes, 1);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(nibbles + row * k / 2 + (g * group + j) / 2),
                         _mm_or_si128(low, _mm_slli_epi16(high, 4)));
      }
    }
}

void quantize_rows_s8__avx2(const float* x, int64_t m, int64_t k, int64_t group, int8_t* q, float* scale,
                            int32_t* group_sums) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * k;
    __m256 amax_v = _mm256_setzero_ps();
    for (int64_t j = 0; j < k; j += 8) amax_v = _mm256_max_ps(amax_v, _mm256_and_ps(_mm256_loadu_ps(row + j), abs_mask));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(amax_v), _mm256_extractf128_ps(amax_v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    const float amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
    scale[i] = amax / 127.f;
    const __m256 inverse = _mm256_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
    for (int64_t g = 0; g < k / group; ++g) {
      __m256i sum = _mm256_setzero_si256();
      for (int64_t j = g * group; j < (g + 1) * group; j += 32) {
        __m256i parts[4];
        for (int p = 0; p < 4; ++p) {
          parts[p] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(row + j + 8 * p), inverse),
                                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
          sum = _mm256_add_epi32(sum, parts[p]);
        }
        const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(parts[0], parts[1]), _mm256_packs_epi32(parts[2], parts[3]));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i * k + j),
                            _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
      }
      group_sums[i * (k / group) + g] = horizontal_sum(sum);
    }
  }
}

namespace {

// Decode (one activation row). One 32-byte load holds 64 weights: two consecutive 32-value
// blocks, whose low nibbles are values 0-15 and high nibbles values 16-31. The activations are
// reordered once per call to match (per 64 values: a0-15, a32-47, then a16-31, a48-63), so each
// load feeds two vpmaddubsw with one mask and one shift, and COLS weight rows share every
// activation load. With groups of 32 each 128-bit half of the i32 sums is one block, scaled in
// place by a vector holding each half's scale: nothing is summed across lanes until the row ends.
// Each load also prefetches the same line of the rows COLS further on, which took cold 4096 x 4096
// from ~14 to ~20 GB/s on 2 threads here (the hardware prefetcher alone keeps too few lines in
// flight for four interleaved row streams). Needs k % 64 == 0 and a group of 32 or a multiple of 64
// (gemv_fits, int4_gemv.h).
void reorder_for_gemv(const int8_t* q, int64_t k, int8_t* out) {
  for (int64_t j = 0; j < k; j += 64) {
    std::memcpy(out + j, q + j, 16);
    std::memcpy(out + j + 16, q + j + 32, 16);
    std::memcpy(out + j + 32, q + j + 16, 16);
    std::memcpy(out + j + 48, q + j + 48, 16);
  }
}

// The i32 sums of one 64-weight load against the reordered activations (|sum| <= 64 * 15 * 127).
inline __m256i dot64(const uint8_t* nibbles, __m256i a_low, __m256i a_high) {
  const __m256i low_mask = _mm256_set1_epi8(0x0f);
  const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(nibbles));
  const __m256i low = _mm256_and_si256(packed, low_mask), high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask);
  const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(low, a_low), _mm256_maddubs_epi16(high, a_high));
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

// out[c] = a_scale * (sum of the row's scaled dot products in acc + sum_g min[c][g] * sum of group
// g's activations) + bias[c].
inline void finish_row(int64_t c, __m256 acc, float a_scale, const float* float_sums, const Int4Weights& w,
                       const float* bias, float* out) {
  const int64_t groups = w.k / w.group;
  const uint16_t* mins = w.mins + c * groups;
  __m256 min_acc = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 8 <= groups; g += 8)
    min_acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mins + g))),
                              _mm256_loadu_ps(float_sums + g), min_acc);
  float min_part = horizontal_sum(min_acc);
  for (; g < groups; ++g) min_part += _cvtsh_ss(mins[g]) * float_sums[g];
  out[c] = a_scale * (horizontal_sum(acc) + min_part) + (bias ? bias[c] : 0.f);
}

// COLS weight rows from c0[s] on, for each of STREAMS places far apart in memory (more than one
// only with the panel layout and COLS = 4: see gemv_panels).
template <int COLS, bool GROUP32, int STREAMS = 1>
void gemv_columns(const int64_t (&c0)[STREAMS], const int8_t* a, float a_scale, const float* float_sums,
                  const Int4Weights& w, const float* bias, float* out) {
  const int64_t k = w.k, groups = k / w.group, chunks_per_group = w.group / 64;
  const __m256i halves = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  // Four rows from the panel layout when there is one (one stream: each load's 32 bytes follow
  // the previous row's), else each row from its own place.
  const bool panel = COLS == 4 && w.panels;
  static_assert(STREAMS == 1 || COLS == 4);
  const int64_t row_step = panel ? 32 : k / 2, run_step = panel ? 4 * 32 : 32;
  const uint8_t* base[STREAMS];
  __m256 acc[STREAMS][COLS];
  for (int s = 0; s < STREAMS; ++s) {
    if (panel) prefetch_panel_scales_ahead(w, w.scales, groups, c0[s]);
    base[s] = panel ? w.panels + c0[s] * k / 2 : w.nibbles + c0[s] * k / 2;
    for (int col = 0; col < COLS; ++col) acc[s][col] = _mm256_setzero_ps();
  }
  for (int64_t chunk = 0; chunk < k / 64; ++chunk) {
    const __m256i a_low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + chunk * 64));
    const __m256i a_high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + chunk * 64 + 32));
    for (int s = 0; s < STREAMS; ++s) {
      if (panel) {  // 2 KB ahead in the stream (past the panel's end it reads the next panel)
        _mm_prefetch(reinterpret_cast<const char*>(base[s] + chunk * run_step + 2048), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(base[s] + chunk * run_step + 2048 + 64), _MM_HINT_T0);
      }
      for (int col = 0; col < COLS; ++col) {
        const uint8_t* at = base[s] + col * row_step + chunk * run_step;
        // Rows: the next rows' cache line at this offset (a hint: past the last row it touches nothing).
        if (!panel && (chunk & 1) == 0) _mm_prefetch(reinterpret_cast<const char*>(at + COLS * k / 2), _MM_HINT_T0);
        const __m256i dot = dot64(at, a_low, a_high);
        const uint16_t* scales = w.scales + (c0[s] + col) * groups;
        __m256 scale;
        if constexpr (GROUP32) {  // each half its own block's scale
          int32_t two_scales;
          std::memcpy(&two_scales, scales + 2 * chunk, 4);
          scale = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_cvtph_ps(_mm_cvtsi32_si128(two_scales))), halves);
        } else {
          scale = _mm256_cvtph_ps(_mm_set1_epi16(int16_t(scales[chunk / chunks_per_group])));
        }
        acc[s][col] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[s][col]);
      }
    }
  }
  for (int s = 0; s < STREAMS; ++s) {
    if constexpr (COLS == 4) {
      finish_four_rows(c0[s], acc[s], a_scale, float_sums, w, bias, out);
    } else {
      for (int col = 0; col < COLS; ++col) finish_row(c0[s] + col, acc[s][col], a_scale, float_sums, w, bias, out);
    }
  }
}

// Four panel rows with groups of 64 * CPG values (CPG 1, 2 or 4): the i16 pair sums of a group's
// loads add in i16 (|pair| <= 2 * 15 * 127 = 3810; eight of them stay below 32767), then one
// vpmaddwd, one conversion and one multiply-add by the group's scale, converted to f32 for the
// four rows before the loop. About 40% fewer instructions per weight than gemv_columns.
// STREAMS panels far apart in memory (c0[s], each a 4-row panel) are walked together: one core
// keeps more reads in flight over two sequential streams than over one (a bare read loop on the
// AMD host: +16%). Here, cold, 2 threads, in a one-process A/B: 4096 x 4096 g128 +5-6%, SmolLM2's
// 1536 x 576 g64 +3-10% (at k = 576 the kernel is close to compute-bound), while two adjacent
// panels (one stream, eight rows) were slower than four rows.
template <int CPG, int STREAMS>
void gemv_panels(const int64_t (&c0)[STREAMS], const int8_t* a, float a_scale, const float* float_sums,
                 const Int4Weights& w, const float* bias, float* out, float* row_scales) {
  const int64_t k = w.k, groups = k / w.group, stride = panel_scale_floats(w);
  const __m256i low_mask = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  const uint8_t* panel[STREAMS];
  __m256 acc[STREAMS][4];
  for (int s = 0; s < STREAMS; ++s) {
    prefetch_panel_scales_ahead(w, w.scales, groups, c0[s]);
    panel_scales_f32(w, c0[s], row_scales + s * stride);
    panel[s] = w.panels + c0[s] * k / 2;
    for (int col = 0; col < 4; ++col) acc[s][col] = _mm256_setzero_ps();
  }
  for (int64_t g = 0; g < groups; ++g) {
    __m256i pairs[STREAMS][4];
    for (int j = 0; j < CPG; ++j) {
      const int64_t chunk = g * CPG + j;
      const __m256i a_low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + chunk * 64));
      const __m256i a_high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + chunk * 64 + 32));
      for (int s = 0; s < STREAMS; ++s) {
        const uint8_t* run = panel[s] + chunk * 128;
        _mm_prefetch(reinterpret_cast<const char*>(run + 2048), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(run + 2048 + 64), _MM_HINT_T0);
        for (int col = 0; col < 4; ++col) {
          const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(run + col * 32));
          const __m256i low = _mm256_and_si256(packed, low_mask);
          const __m256i high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask);
          const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(low, a_low), _mm256_maddubs_epi16(high, a_high));
          pairs[s][col] = j == 0 ? p : _mm256_add_epi16(pairs[s][col], p);
        }
      }
    }
    for (int s = 0; s < STREAMS; ++s)
      for (int col = 0; col < 4; ++col)
        acc[s][col] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pairs[s][col], ones)),
                                      _mm256_broadcast_ss(row_scales + s * stride + col * groups + g), acc[s][col]);
  }
  for (int s = 0; s < STREAMS; ++s) finish_four_rows(c0[s], acc[s], a_scale, float_sums, w, bias, out);
}

// The two panel kernels, each for one or two streams.
template <int CPG>
struct GroupPanels {  // groups of 64 * CPG
  template <int S>
  static void run(const int64_t (&c0)[S], const int8_t* a, float a_scale, const float* float_sums, const Int4Weights& w,
                  const float* bias, float* out, float* row_scales) {
    gemv_panels<CPG, S>(c0, a, a_scale, float_sums, w, bias, out, row_scales);
  }
};
struct Group32Panels {
  template <int S>
  static void run(const int64_t (&c0)[S], const int8_t* a, float a_scale, const float* float_sums, const Int4Weights& w,
                  const float* bias, float* out, float*) {
    gemv_columns<4, true, S>(c0, a, a_scale, float_sums, w, bias, out);
  }
};

}  // namespace

namespace avx2 {

void gemv_q4s8(const int8_t* q, float a_scale, const int32_t* group_sums, const Int4Weights& w, const float* bias,
               float* out, GemvPanelShare panel_share) {
  constexpr int kCols = 4;
  // Buffers kept per thread in cache lines of their own (a decoded token makes a few hundred of
  // these calls); the workers below read the caller's through these pointers.
  thread_local LineBuffer<int8_t> reordered_buffer;
  thread_local LineBuffer<float> float_sums_buffer;
  int8_t* const reordered = reordered_buffer.get(size_t(w.k));
  reorder_for_gemv(q, w.k, reordered);
  float* const float_sums = float_sums_buffer.get(size_t(w.k / w.group));
  for (int64_t g = 0; g < w.k / w.group; ++g) float_sums[g] = float(group_sums[g]);
  const bool group32 = w.group == 32;
  const auto four = group32 ? gemv_columns<kCols, true> : gemv_columns<kCols, false>;
  const auto one = group32 ? gemv_columns<1, true> : gemv_columns<1, false>;
  const int64_t cpg = w.group / 64;
  const auto panels = !w.panels   ? nullptr
                      : panel_share ? panel_share
                      : group32   ? gemv_panel_share<Group32Panels>
                      : cpg == 1  ? gemv_panel_share<GroupPanels<1>>
                      : cpg == 2  ? gemv_panel_share<GroupPanels<2>>
                      : cpg == 4  ? gemv_panel_share<GroupPanels<4>>
                                  : nullptr;
  const int64_t full_panels = w.n / kCols;
  static ThreadSpeeds speeds;
  parallel_for_balanced(0, (w.n + kCols - 1) / kCols, 8, speeds, [&](int64_t first, int64_t last) {
    thread_local LineBuffer<float> row_scales_buffer;  // this thread's, in cache lines of its own (line_buffer.h)
    float* row_scales = panels ? row_scales_buffer.get(size_t(2 * panel_scale_floats(w))) : nullptr;
    const int8_t* a = reordered;
    const float* sums = float_sums;
    int64_t p = first;
    if (panels && first < full_panels) {
      p = std::min(last, full_panels);
      panels(first, p, a, a_scale, sums, w, bias, out, row_scales);
    }
    for (; p < last; ++p) {
      const int64_t c0 = p * kCols;
      if (c0 + kCols <= w.n) {
        four({c0}, a, a_scale, sums, w, bias, out);
      } else {
        for (int64_t c = c0; c < w.n; ++c) one({c}, a, a_scale, sums, w, bias, out);
      }
    }
  });
}

}  // namespace avx2

void gemm_q4s8__avx2(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
                     const float* bias, float* out, int64_t ldo) {
  if (m >= 8) return prefill(m, q, a_scale, group_sums, w, bias, out, ldo);
  if (m == 1 && row_blocks::gemv<row_blocks::Avx2Kernel>(q, a_scale[0], group_sums, w, bias, out)) return;
  if (m == 1 && avx2::gemv_fits(w)) return avx2::gemv_q4s8(q, a_scale[0], group_sums, w, bias, out, nullptr);
  parallel_for(0, w.n, 16, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      int64_t i = 0;
      for (; i + 4 <= m; i += 4) column<4>(i, c, q, a_scale, group_sums, w, bias, out, ldo);
      for (; i < m; ++i) column<1>(i, c, q, a_scale, group_sums, w, bias, out, ldo);
    }
  });
}

}  // namespace shrink::kernel_variants
