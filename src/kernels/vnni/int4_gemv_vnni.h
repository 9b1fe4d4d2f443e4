// The int4 decode GEMV's panel kernel with AVX512-VNNI (one activation row, groups of 32 or a
// multiple of 64, the 4-row panel layout), run by the AVX2 GEMV's driver (kernels/avx2/int4_gemv.h):
// it reads two of a panel's rows per 64-byte load and multiplies their nibbles in place with
// vpdpbusd, about 2.4x fewer instructions per weight than the AVX2 panel kernel, which at
// SmolLM2's widths (k = 576) is close to compute-bound. GFNI = true takes each byte's high nibble
// down with one vgf2p8affineqb instead of a shift and a mask (the 16-row-block kernel, which
// decodes every layer whose rows fit its blocks, moves no nibble: see its high_sums_down; here,
// where each step's sums are scaled at once, two chains a pair of rows cost more than the
// shift: 1.06-1.08x the time on the Zen 4 host). A CPU with AVX512-VNNI need not
// have GFNI: Cascade Lake has not), so it is instantiated only in kernels/gfni/, compiled with
// -mgfni; int4_gemm__vnni.cpp instantiates GFNI = false. Include only from files compiled with
// the VNNI flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx2/int4_gemv.h"
#include "kernels/vnni/int4_gemv_row_blocks.h"
#include "kernels/vnni/panel_row_sums.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink::kernel_variants::vnni_gemv {
// Internal linkage: the two files that include this are compiled with different flags, and an
// inline function emitted out of line in both may be merged by the linker into either's copy.
namespace {

// The GF(2) matrix of vgf2p8affineqb that maps a byte to its high nibble shifted down: result bit
// i (i < 4) = source bit i + 4, the matrix's byte 7 - i selecting it; bits 4-7 = 0.
constexpr long long kHighNibbleDown = 0x1020408000000000LL;

// The f32 scales of rows c0 .. c0 + 3, 16 at a time (the AVX2 version converts 8 at a time and
// the rest one by one: at k = 576, 36 scales per panel, that was ~10% of the panel): [row][group]
// from w.scales, or with groups of 32 in the order of w.panel_scales.
// With groups of 32 a step multiplies each pair of rows by four scales (both rows' groups 2t and
// 2t + 1): in the panels' order they are one 16-byte load and one permute away. Gathered from the
// [row][group] order (movq, movhps, vpermps) they had cost a vector operation more per pair and
// step; in the panels' order the kernel took 0.905-0.966x the time at 1536 x 576 g32 and 0.96x
// at 576 x 1536 with the weights in L2, the same cold (the same order built per panel inside the
// kernel had cost more than it saved at k = 576: 1.06-1.08x).
inline void panel_scales_f32_avx512(const Int4Weights& w, int64_t c0, float* to) {
  const int64_t count = 4 * (w.k / w.group);
  // the four rows' scales, one after another
  const uint16_t* scales = (w.group == 32 ? w.panel_scales : w.scales) + c0 * (w.k / w.group);
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
template <int CPG, int STREAMS, bool GFNI>
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
    avx2::prefetch_panel_scales_ahead(w, w.group == 32 ? w.panel_scales : w.scales, groups, c0[s]);
    panel_scales_f32_avx512(w, c0[s], row_scales + s * stride);
    panel[s] = w.panels + c0[s] * k / 2;
  }
  // The scales of rows 2h and 2h + 1 for step `step`, lane by lane (row_scales: [row][group], or
  // with groups of 32 in the panels' order, pack_int4_panel_scales).
  const auto step_scale = [&](int s, int h, int64_t step) {
    const float* scales = row_scales + s * stride + 2 * h * groups;
    if constexpr (kGroup32) {  // groups 2 step and 2 step + 1 of both rows, four lanes each
      return _mm512_permutexvar_ps(quads, _mm512_broadcast_f32x4(_mm_loadu_ps(scales + 4 * step)));
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
          __m512i high;
          if constexpr (GFNI)  // one affine byte transform: each byte's high nibble into its low bits
            high = _mm512_gf2p8affine_epi64_epi8(packed, _mm512_set1_epi64(kHighNibbleDown), 0);
          else
            high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low_mask);
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
  for (int s = 0; s < STREAMS; ++s)
    avx2::store_four_rows(c0[s], vnni::panel_row_totals(acc_of(s, 0), acc_of(s, 1)), a_scale, bias, out);
}

template <int CPG, bool GFNI>
struct VnniPanels {
  template <int S>
  static void run(const int64_t (&c0)[S], const int8_t* a, float a_scale, const float* float_sums, const Int4Weights& w,
                  const float* bias, float* out, float* row_scales) {
    gemv_panels_vnni<CPG, S, GFNI>(c0, a, a_scale, float_sums, w, bias, out, row_scales);
  }
};

// The panel kernel for w's group (nullptr: no panel copy, groups of 32 without the scales in the
// panels' order, or a group it does not handle).
template <bool GFNI>
avx2::GemvPanelShare panel_share(const Int4Weights& w) {
  if (!w.panels) return nullptr;
  if (w.group == 32) return !w.panel_scales ? nullptr : avx2::gemv_panel_share<VnniPanels<0, GFNI>>;
  if (w.group % 64) return nullptr;
  switch (w.group / 64) {
    case 1: return avx2::gemv_panel_share<VnniPanels<1, GFNI>>;
    case 2: return avx2::gemv_panel_share<VnniPanels<2, GFNI>>;
    case 4: return avx2::gemv_panel_share<VnniPanels<4, GFNI>>;
    default: return nullptr;
  }
}

// gemm_q4s8 for one row from w's 16-row blocks when it has them, else with the panel kernel when w
// fits it; false: the caller runs its other paths.
template <bool GFNI>
bool gemv(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
          const float* bias, float* out) {
  if (m != 1) return false;
  if (gemv_row_blocks(q, a_scale[0], group_sums, w, bias, out)) return true;
  if (!avx2::gemv_fits(w)) return false;
  const avx2::GemvPanelShare share = panel_share<GFNI>(w);
  if (!share) return false;
  avx2::gemv_q4s8(q, a_scale[0], group_sums, w, bias, out, share);
  return true;
}

}  // namespace
}  // namespace shrink::kernel_variants::vnni_gemv
