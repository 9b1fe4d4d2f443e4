// int4 x int8 with AVX512-VNNI. Prefill: blocks of 4 panels (64 output channels) expanded to u8
// (int4_expand.h), tiles of up to 5 activation rows x 4 panels accumulating each quantization group
// with vpdpbusd (u8 weights x s8 activations, exact in s32), then folding the group into f32 with
// its scale and min. Decode (one row, groups of 32 or a multiple of 64, the 4-row panel layout): the AVX2
// GEMV's driver (int4_gemv.h) with a panel kernel that reads two of a panel's rows per 64-byte
// load and multiplies their nibbles in place with vpdpbusd — about 2.4x fewer instructions per
// weight than the AVX2 panel kernel, which at SmolLM2's widths (k = 576) is close to
// compute-bound. Other small row counts go to the AVX2 kernels.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/avx2/int4_expand.h"
#include "kernels/avx2/int4_gemv.h"
#include "kernels/kernel_variants.h"
#include "kernels/line_buffer.h"
#include "kernels/vnni/int8_tile_vnni.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink::kernel_variants {
namespace {

constexpr int64_t kPanelsPerBlock = 4;
constexpr int kPrefillTileRows = 5;  // see vnni::kTileRows

// Rows [i, i + ROWS) x the PANELS expanded panels starting at output channel c0, quantization
// groups [g0, g1): acc (ROWS x PANELS x 16 f32, [row][panel][channel], 64-byte aligned) +=
// each group's exact s32 dot products times its scale, plus its min times the rows' group sums.
// FRESH: acc starts from zero.
template <int ROWS, int PANELS, bool FRESH>
void prefill_tile(int64_t i, int64_t g0, int64_t g1, const ExpandedPanel& panels, const int8_t* q, const float* float_sums,
                  const Int4Weights& w, float* acc) {
  const int64_t groups = w.k / w.group, words_per_group = w.group / 4;
  const int64_t panel_stride = ExpandedPanel::words_per_panel(w) * 4, floats = ExpandedPanel::floats_per_panel(w);
  if constexpr (FRESH) std::memset(acc, 0, sizeof(float) * ROWS * PANELS * 16);
  alignas(64) int32_t sums[ROWS * PANELS * 16];
  const auto* a = reinterpret_cast<const uint8_t*>(q + i * w.k);
  const auto* b = reinterpret_cast<const int8_t*>(panels.words.data());
  for (int64_t g = g0; g < g1; ++g) {
    vnni::accumulate<ROWS, PANELS, /*ACTIVATIONS_UNSIGNED=*/false, /*FRESH=*/true>(
        a, w.k, b, panel_stride, g * words_per_group, (g + 1) * words_per_group, sums);
    for (int p = 0; p < PANELS; ++p) {
      const __m512 scale = _mm512_loadu_ps(panels.scales.data() + p * floats + g * 16);
      const __m512 min = _mm512_loadu_ps(panels.mins.data() + p * floats + g * 16);
      for (int r = 0; r < ROWS; ++r) {
        float* at = acc + (r * PANELS + p) * 16;
        __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(sums + (r * PANELS + p) * 16)), scale,
                                   _mm512_load_ps(at));
        _mm512_store_ps(at, _mm512_fmadd_ps(min, _mm512_set1_ps(float_sums[(i + r) * groups + g]), v));
      }
    }
  }
}

// All m rows x the PANELS expanded panels at output channel c0. The quantization groups go in
// blocks whose slice of the expanded panels (PANELS x 16 channels x the block's bytes of k) is
// at most 32 KB, so the slice stays in L1 while every row tile passes over it; each tile's f32
// accumulators wait in `acc` (m x PANELS x 16 floats) between blocks. Walking all of k per tile
// had read the whole expanded block (256 KB at k = 4096) from L2 for every 5 rows.
template <int PANELS>
void prefill_rows(int64_t m, int64_t c0, const ExpandedPanel& panels, const int8_t* q, const float* float_sums,
                  const float* a_scale, const Int4Weights& w, const float* bias, float* out, int64_t ldo, float* acc) {
  const int64_t groups = w.k / w.group;
  const int64_t block_groups = std::max<int64_t>(1, (int64_t(32) << 10) / (PANELS * 16 * w.group));
  for (int64_t g0 = 0; g0 < groups; g0 += block_groups) {
    const int64_t g1 = std::min(groups, g0 + block_groups);
    vnni::each_row_tile<kPrefillTileRows>(m, [&](auto rows, int64_t i) {
      constexpr int R = decltype(rows)::value;
      float* tile_acc = acc + i * PANELS * 16;
      if (g0 == 0)
        prefill_tile<R, PANELS, true>(i, g0, g1, panels, q, float_sums, w, tile_acc);
      else
        prefill_tile<R, PANELS, false>(i, g0, g1, panels, q, float_sums, w, tile_acc);
    });
  }
  for (int p = 0; p < PANELS; ++p) {
    const int64_t c = c0 + p * 16;
    if (c >= w.n) break;
    const __mmask16 mask = __mmask16((1u << std::min<int64_t>(16, w.n - c)) - 1u);
    const __m512 bias_v = bias ? _mm512_maskz_loadu_ps(mask, bias + c) : _mm512_setzero_ps();
    for (int64_t r = 0; r < m; ++r) {
      const __m512 v = _mm512_mul_ps(_mm512_set1_ps(a_scale[r]), _mm512_load_ps(acc + (r * PANELS + p) * 16));
      _mm512_mask_storeu_ps(out + r * ldo + c, mask, _mm512_add_ps(v, bias_v));
    }
  }
}

// The f32 scales of rows c0 .. c0 + 3, [row][group], 16 at a time (the AVX2 version converts 8
// at a time and the rest one by one: at k = 576, 36 scales per panel, that was ~10% of the panel).
inline void panel_scales_f32_avx512(const Int4Weights& w, int64_t c0, float* to) {
  const int64_t count = 4 * (w.k / w.group);
  const uint16_t* scales = w.scales + c0 * (w.k / w.group);  // the four rows' scales, one after another
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 mask = count - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (count - i)) - 1);
    _mm512_mask_storeu_ps(to + i, mask, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, scales + i)));
  }
}

// The 4-row panels at rows c0[s] (s < STREAMS, far apart in memory: see gemv_panels in the AVX2
// file), groups of 64 * CPG, or of 32 when CPG is 0. A 64-byte load holds 64 weights of two rows
// (32 bytes each, the panel layout); its low nibbles meet activations a_low and its high nibbles
// a_high (the reordered row, each 32-byte half broadcast to both halves of a zmm), so lanes 0-7 of
// the s32 sums belong to the first row and 8-15 to the second. Per group the sums are converted
// and multiplied by the two rows' scales. With groups of 32 a row's 32 bytes hold two groups, the
// first 16 bytes one and the last 16 the other (lanes 0-3 and 4-7 of its half), so each 64-value
// step is scaled by a vector of four scales, each over four lanes.
template <int CPG, int STREAMS>
void gemv_panels_vnni(const int64_t (&c0)[STREAMS], const int8_t* a, float a_scale, const float* float_sums,
                      const Int4Weights& w, const float* bias, float* out, float* row_scales) {
  constexpr bool kGroup32 = CPG == 0;
  constexpr int kChunks = kGroup32 ? 1 : CPG;  // 64-value chunks per step
  const int64_t k = w.k, groups = k / w.group, steps = k / (64 * kChunks), stride = avx2::panel_scale_floats(w);
  const __m512i low_mask = _mm512_set1_epi8(0x0f);
  const __m512i quads = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const uint8_t* panel[STREAMS];
  // The f32 sums of stream s's rows 0 and 1 (h = 0) and 2 and 3 (h = 1), as named variables: GCC
  // kept an array of them in memory, storing all four on every step.
  static_assert(STREAMS <= 2);
  __m512 acc00 = _mm512_setzero_ps(), acc01 = acc00, acc10 = acc00, acc11 = acc00;
  const auto acc_of = [&](int s, int h) -> __m512& { return s == 0 ? (h == 0 ? acc00 : acc01) : (h == 0 ? acc10 : acc11); };
  for (int s = 0; s < STREAMS; ++s) {
    panel_scales_f32_avx512(w, c0[s], row_scales + s * stride);
    panel[s] = w.panels + c0[s] * k / 2;
  }
  // The scales of rows 2h and 2h + 1 ([row][group] in row_scales) for step `step`, lane by lane.
  const auto step_scale = [&](int s, int h, int64_t step) {
    const float* scales = row_scales + s * stride + 2 * h * groups;
    if constexpr (kGroup32) {  // groups 2 step and 2 step + 1 of both rows, four lanes each
      const __m128 four = _mm_loadh_pi(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(scales + 2 * step))),
                                       reinterpret_cast<const __m64*>(scales + groups + 2 * step));
      return _mm512_permutexvar_ps(quads, _mm512_zextps128_ps512(four));
    } else {
      return _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(scales[step]), _mm512_set1_ps(scales[groups + step]));
    }
  };
  for (int64_t step = 0; step < steps; ++step) {
    __m512i dots[STREAMS][2];
    for (int s = 0; s < STREAMS; ++s) dots[s][0] = dots[s][1] = _mm512_setzero_si512();
    for (int j = 0; j < kChunks; ++j) {
      const int64_t chunk = step * kChunks + j;
      const __m512i a_low = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + chunk * 64)));
      const __m512i a_high =
          _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + chunk * 64 + 32)));
      for (int s = 0; s < STREAMS; ++s) {
        const uint8_t* run = panel[s] + chunk * 128;
        _mm_prefetch(reinterpret_cast<const char*>(run + 2048), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(run + 2048 + 64), _MM_HINT_T0);
        for (int h = 0; h < 2; ++h) {
          __m512i packed = _mm512_loadu_si512(run + 64 * h);
          // One load per 64 bytes: GCC otherwise folds the load into both of its uses (the and and
          // the shift), two loads of each line (hot weights 1.05-1.3x faster with one).
          asm("" : "+v"(packed));
          const __m512i low = _mm512_and_si512(packed, low_mask);
          const __m512i high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low_mask);
          dots[s][h] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(dots[s][h], low, a_low), high, a_high);
        }
      }
    }
    for (int s = 0; s < STREAMS; ++s)
      for (int h = 0; h < 2; ++h)
        acc_of(s, h) = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots[s][h]), step_scale(s, h, step), acc_of(s, h));
  }
  // The mins' term, sum_g min[c][g] * float_sums[g], goes into the same lanes, eight groups of
  // rows 2h and 2h + 1 at a time (lanes 0-7 and 8-15, as their dot products), so that one
  // reduction sums both. A separate pass for the mins with its own reduction tree (the AVX2
  // epilogue's shape) had taken ~24% of the time at 1536 x 576 g32 with the weights in L2; this
  // way the kernel takes 0.90x the time there (g32 and g64), 0.94-0.96x at 576 x 1536.
  for (int64_t g = 0; g < groups; g += 8) {
    const __mmask8 mask = groups - g >= 8 ? __mmask8(0xff) : __mmask8((1u << (groups - g)) - 1);
    const __m512 sums = _mm512_broadcast_f32x8(_mm256_maskz_loadu_ps(mask, float_sums + g));
    for (int s = 0; s < STREAMS; ++s)
      for (int h = 0; h < 2; ++h) {
        const uint16_t* row = w.mins + (c0[s] + 2 * h) * groups + g;
        const __m256i two = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_maskz_loadu_epi16(mask, row)),
                                                    _mm_maskz_loadu_epi16(mask, row + groups), 1);
        acc_of(s, h) = _mm512_fmadd_ps(_mm512_cvtph_ps(two), sums, acc_of(s, h));
      }
  }
  for (int s = 0; s < STREAMS; ++s) {
    const __m256 rows[4] = {_mm512_extractf32x8_ps(acc_of(s, 0), 0), _mm512_extractf32x8_ps(acc_of(s, 0), 1),
                            _mm512_extractf32x8_ps(acc_of(s, 1), 0), _mm512_extractf32x8_ps(acc_of(s, 1), 1)};
    avx2::store_four_rows(c0[s], avx2::sum_four(rows), a_scale, bias, out);
  }
}

template <int CPG>
struct VnniPanels {
  template <int S>
  static void run(const int64_t (&c0)[S], const int8_t* a, float a_scale, const float* float_sums, const Int4Weights& w,
                  const float* bias, float* out, float* row_scales) {
    gemv_panels_vnni<CPG, S>(c0, a, a_scale, float_sums, w, bias, out, row_scales);
  }
};

avx2::GemvPanelShare vnni_panel_share(const Int4Weights& w) {
  if (!w.panels) return nullptr;
  if (w.group == 32) return avx2::gemv_panel_share<VnniPanels<0>>;
  if (w.group % 64) return nullptr;
  switch (w.group / 64) {
    case 1: return avx2::gemv_panel_share<VnniPanels<1>>;
    case 2: return avx2::gemv_panel_share<VnniPanels<2>>;
    case 4: return avx2::gemv_panel_share<VnniPanels<4>>;
    default: return nullptr;
  }
}

}  // namespace

void gemm_q4s8__vnni(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
                     const float* bias, float* out, int64_t ldo) {
  if (m == 1 && avx2::gemv_fits(w))
    if (const avx2::GemvPanelShare share = vnni_panel_share(w))
      return avx2::gemv_q4s8(q, a_scale[0], group_sums, w, bias, out, share);
  if (m < 8) return gemm_q4s8__avx2(m, q, a_scale, group_sums, w, bias, out, ldo);
  const int64_t groups = w.k / w.group, panels = (w.n + 15) / 16;
  std::vector<float> float_sums(static_cast<size_t>(m * groups));
  for (size_t e = 0; e < float_sums.size(); ++e) float_sums[e] = float(group_sums[e]);
  parallel_for(0, (panels + kPanelsPerBlock - 1) / kPanelsPerBlock, 1, [&](int64_t first, int64_t last) {
    ExpandedPanel expanded;
    expanded.resize(w, kPanelsPerBlock);
    thread_local LineBuffer<float> acc_buffer;
    float* acc = acc_buffer.get(size_t(m * kPanelsPerBlock * 16));
    const int64_t words = ExpandedPanel::words_per_panel(w), floats = ExpandedPanel::floats_per_panel(w);
    for (int64_t block = first; block < last; ++block) {
      const int64_t panel0 = block * kPanelsPerBlock, count = std::min(kPanelsPerBlock, panels - panel0);
      for (int64_t p = 0; p < count; ++p)
        expand_panel(w, 16 * (panel0 + p), expanded.words.data() + p * words, expanded.scales.data() + p * floats,
                     expanded.mins.data() + p * floats);
      const int64_t c0 = 16 * panel0;
      switch (count) {
        case 4: prefill_rows<4>(m, c0, expanded, q, float_sums.data(), a_scale, w, bias, out, ldo, acc); break;
        case 3: prefill_rows<3>(m, c0, expanded, q, float_sums.data(), a_scale, w, bias, out, ldo, acc); break;
        case 2: prefill_rows<2>(m, c0, expanded, q, float_sums.data(), a_scale, w, bias, out, ldo, acc); break;
        default: prefill_rows<1>(m, c0, expanded, q, float_sums.data(), a_scale, w, bias, out, ldo, acc); break;
      }
    }
  });
}

}  // namespace shrink::kernel_variants
