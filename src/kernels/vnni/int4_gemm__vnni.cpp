// int4 x int8 with AVX512-VNNI. Prefill: blocks of 4 panels (64 output channels) expanded to u8
// (int4_expand.h), tiles of up to 5 activation rows x 4 panels accumulating each quantization group
// with vpdpbusd (u8 weights x s8 activations, exact in s32), then folding the group into f32 with
// its scale and min. Decode (one row, groups of 32 or a multiple of 64, the 4-row panel layout): the
// panel kernel of int4_gemv_vnni.h. Other small row counts go to the AVX2 kernels.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/avx2/int4_expand.h"
#include "kernels/kernel_variants.h"
#include "kernels/line_buffer.h"
#include "kernels/vnni/int4_gemv_vnni.h"
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

// All m rows x the PANELS expanded panels at output channel c0. Where L1 keeps it
// (vnni::l1_keeps_slice), the quantization groups go in blocks whose slice of the expanded panels
// (PANELS x 16 channels x the block's bytes of k) is at most 32 KB, so the slice stays in L1 while
// every row tile passes over it; each tile's f32 accumulators wait in `acc` (m x PANELS x 16
// floats) between blocks. Walking all of k per tile had read the whole expanded block (256 KB at
// k = 4096) from L2 for every 5 rows.
template <int PANELS>
void prefill_rows(int64_t m, int64_t c0, const ExpandedPanel& panels, const int8_t* q, const float* float_sums,
                  const float* a_scale, const Int4Weights& w, const float* bias, float* out, int64_t ldo, float* acc) {
  const int64_t groups = w.k / w.group;
  const int64_t block_groups =
      vnni::l1_keeps_slice() ? std::max<int64_t>(1, vnni::kL1SliceBytes / (PANELS * 16 * w.group)) : groups;
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

}  // namespace

void gemm_q4s8__vnni(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
                     const float* bias, float* out, int64_t ldo) {
  if (vnni_gemv::gemv</*GFNI=*/false>(m, q, a_scale, group_sums, w, bias, out)) return;
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
