// The int4 x int8 prefill with AMX: the weights expanded to u8 a pair of 16-channel panels at a
// time (int4_expand.h: k in groups of 4 bytes x 16 channels, which is the B operand of a tile
// product as it is, 1 KB per 64 values of k), the s8 activations packed into 16-row tiles (1 KB
// per tile and 64 values; the rows past m zero), and `tdpbsud` (signed activations x unsigned
// weights, exact in s32) accumulating one quantization group in four 16 x 16 tiles: 32 rows x
// 32 channels. After each group the tiles are folded into f32 with the group's scales and mins
// (the same order of operations as the VNNI prefill), and a block's rows are written once at
// the end. Groups that are not a multiple of 64 (a 64-byte tile row would span two) and fewer than
// 16 rows go to the VNNI kernel. Tile registers: 0-3 accumulate, 4-5 activations, 6-7 weights.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/amx/amx_tiles.h"
#include "kernels/avx2/int4_expand.h"
#include "kernels/kernel_variants.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/cpu.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink::kernel_variants {
namespace {

using amx::kBlock;
using amx::kStepBytes;
using amx::kTileBytes;
using amx::kTileRows;

// The activations as 16-row tiles, tile t's step s at (t * steps + s) * 1 KB; rows past m zero.
std::vector<int8_t> pack_rows(const int8_t* q, int64_t m, int64_t k) {
  const int64_t tiles = (m + kTileRows - 1) / kTileRows, steps = k / kStepBytes;
  std::vector<int8_t> packed(size_t(tiles * steps * kTileBytes));
  parallel_for(0, tiles, 1, [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t)
      for (int64_t r = 0; r < kTileRows; ++r) {
        const int64_t row = t * kTileRows + r;
        for (int64_t s = 0; s < steps; ++s) {
          int8_t* to = packed.data() + (t * steps + s) * kTileBytes + r * kStepBytes;
          if (row < m) std::memcpy(to, q + row * k + s * kStepBytes, size_t(kStepBytes));
          else std::memset(to, 0, size_t(kStepBytes));
        }
      }
  });
  return packed;
}

// Rows [i, i + 16 RT) (their packed tiles at `a`, the second tile's `a_tile_stride` bytes on) x
// the CT expanded panels at `panels` (the second `panel_stride` bytes on), all of k, into
// acc[r][32] (f32, 32 rows x 32 channels; channels of a missing second panel left alone).
template <int RT, int CT>
void block(int64_t i, const int8_t* a, int64_t a_tile_stride, const uint8_t* panels, int64_t panel_stride,
           const float* scales, const float* mins, int64_t floats_per_panel, const float* float_sums, int64_t groups,
           int64_t steps_per_group, float* acc) {
  alignas(64) int32_t c[kBlock * kBlock];
  std::fill(acc, acc + kBlock * kBlock, 0.f);
  for (int64_t g = 0; g < groups; ++g) {
    amx::zero_accumulators<RT, CT>();
    amx::accumulate_steps<RT, CT, amx::Operands::s8u8>(a, a_tile_stride, panels, panel_stride, g * steps_per_group,
                                                       (g + 1) * steps_per_group);
    amx::store_accumulators<RT, CT>(c);
    for (int ct = 0; ct < CT; ++ct) {
      const __m512 scale = _mm512_loadu_ps(scales + ct * floats_per_panel + g * 16);
      const __m512 min = _mm512_loadu_ps(mins + ct * floats_per_panel + g * 16);
      for (int r = 0; r < RT * kTileRows; ++r) {
        float* at = acc + r * kBlock + ct * kTileRows;
        const __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + r * kBlock + ct * kTileRows)), scale,
                                         _mm512_load_ps(at));
        _mm512_store_ps(at, _mm512_fmadd_ps(min, _mm512_set1_ps(float_sums[(i + r) * groups + g]), v));
      }
    }
  }
}

}  // namespace

void gemm_q4s8__amx(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
                    const float* bias, float* out, int64_t ldo) {
  if (m < kTileRows || w.group % kStepBytes)  // (every CPU with AMX so far has GFNI too)
    return (cpu_features().gfni ? gemm_q4s8__gfni : gemm_q4s8__vnni)(m, q, a_scale, group_sums, w, bias, out, ldo);
  const int64_t groups = w.k / w.group, steps = w.k / kStepBytes, steps_per_group = w.group / kStepBytes;
  const int64_t tiles = (m + kTileRows - 1) / kTileRows, panels = (w.n + 15) / 16, pairs = (panels + 1) / 2;
  const std::vector<int8_t> packed = pack_rows(q, m, w.k);
  std::vector<float> float_sums(size_t(tiles * kTileRows * groups), 0.f);  // the padding rows' stay 0
  for (int64_t e = 0; e < m * groups; ++e) float_sums[size_t(e)] = float(group_sums[e]);
  const int64_t a_tile_stride = steps * kTileBytes;
  // Each thread takes a range of panel pairs, expands a pair at a time and runs every row block
  // past it (the pair's 2 x 16 channels x k bytes stay in L2 while the activations stream).
  parallel_for(0, pairs, 1, [&](int64_t first, int64_t last) {
    ExpandedPanel expanded;
    expanded.resize(w, 2);
    const int64_t words = ExpandedPanel::words_per_panel(w), floats = ExpandedPanel::floats_per_panel(w);
    alignas(64) float acc[kBlock * kBlock];
    amx::configure_tiles();
    for (int64_t pair = first; pair < last; ++pair) {
      const int64_t panel = 2 * pair, count = std::min<int64_t>(2, panels - panel);
      for (int64_t p = 0; p < count; ++p)
        expand_panel(w, 16 * (panel + p), expanded.words.data() + p * words, expanded.scales.data() + p * floats,
                     expanded.mins.data() + p * floats);
      const auto* b = reinterpret_cast<const uint8_t*>(expanded.words.data());
      const int64_t c0 = 16 * panel;
      for (int64_t t = 0; t < tiles; t += 2) {
        const int64_t i = t * kTileRows;
        const int8_t* a = packed.data() + t * a_tile_stride;
        const auto run = [&](auto rt, auto ct) {
          block<decltype(rt)::value, decltype(ct)::value>(i, a, a_tile_stride, b, words * 4, expanded.scales.data(),
                                                          expanded.mins.data(), floats, float_sums.data(), groups,
                                                          steps_per_group, acc);
        };
        using One = std::integral_constant<int, 1>;
        using Two = std::integral_constant<int, 2>;
        if (t + 1 < tiles) {
          if (count == 2) run(Two(), Two());
          else run(Two(), One());
        } else {
          if (count == 2) run(One(), Two());
          else run(One(), One());
        }
        for (int64_t r = 0; r < kBlock && i + r < m; ++r)
          for (int64_t ct = 0; ct < count; ++ct) {
            const int64_t c = c0 + 16 * ct;
            if (c >= w.n) break;
            const __mmask16 mask = __mmask16((1u << std::min<int64_t>(16, w.n - c)) - 1u);
            const __m512 bias_v = bias ? _mm512_maskz_loadu_ps(mask, bias + c) : _mm512_setzero_ps();
            const __m512 v = _mm512_mul_ps(_mm512_set1_ps(a_scale[i + r]), _mm512_load_ps(acc + r * kBlock + 16 * ct));
            _mm512_mask_storeu_ps(out + (i + r) * ldo + c, mask, _mm512_add_ps(v, bias_v));
          }
      }
    }
    _tile_release();
  });
}

}  // namespace shrink::kernel_variants
