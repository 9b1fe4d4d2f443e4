// The pieces of the int8 GEMM that AVX512-VNNI runs, shared by gemm_u8s8__vnni, the AMX variant
// (which sends its row remainders and k tails here) and the int4 prefill (gemm_q4s8__vnni):
//   - a ROWS x PANELS tile: acc[r][p] (16 s32 lanes, channels 16 p .. 16 p + 15 of the tile) +=
//     sum over groups of 4 bytes of row r times panel p's 64 bytes (one vpdpbusd per pair: u8
//     activations broadcast, s8 weights as packed; exact, no int16 stage);
//   - the epilogue of 16 channels of one row (masked loads and stores at the edge of n).
// Include only from files compiled with the VNNI flags.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "shrink/kernels/cpu.h"
#include "shrink/kernels/int8_gemm.h"

namespace shrink::kernel_variants::vnni {

static_assert(kInt8Panel == 16 && kInt8Group == 4, "one vpdpbusd takes a group of a panel: 16 channels x 4 bytes");
constexpr int64_t kPanelGroupBytes = kInt8Panel * kInt8Group;  // 64

// The int8 GEMM and the int4 prefill walk k in blocks whose slice of the weights (32 KB) stays in
// L1 while every row tile passes over it, where L1 holds 48 KB or more (the Intel VNNI hosts,
// Zen 5: 1.16-1.27x there). With a 32 KB L1 (Zen 4) the slice cannot stay and the blocks only
// cost: on the 2-core Zen 4 host, alternating in one process, whole-k tiles ran 1.016-1.052x
// faster at 1024^3, 1.038-1.050x at 256 x 4096^2 and 1.027-1.059x at 64 x 4096^2 (int8, 2 threads,
// two runs of 21 rounds; an A/A 0.990-1.005x; blocks of 64 groups, which fit, 0.955-0.997x), and
// the int4 prefill at M = 512 1.035-1.043x at 4096^2 g128, 1.020-1.041x at 1536 x 576 g64 and
// 1.005-1.029x at 576 x 1536 g128 (two runs of 15 rounds).
constexpr int64_t kL1SliceBytes = int64_t(32) << 10;
inline bool l1_keeps_slice() {
  static const bool keeps = l1d_cache_bytes() * 2 >= 3 * kL1SliceBytes;
  return keeps;
}

// 4 bytes at p in all 16 lanes.
inline __m512i broadcast4(const uint8_t* p) {
  int32_t four;
  std::memcpy(&four, p, 4);
  return _mm512_set1_epi32(four);
}

// sums[r][p] (16 s32 lanes each, 64-byte aligned) += rows r of `a` (lda bytes apart) x panels p
// (consecutive panels `panel_stride` bytes apart), over groups [g0, g1) of each.
// ACTIVATIONS_UNSIGNED: a is u8 and b s8 (the int8 path); otherwise b holds u8 weights (the int4
// prefill's expanded nibbles) and a s8 activations.
// Written as folds over index packs so that every accumulator index is a constant when GCC decides
// what lives in registers: with loops over r and p it kept a copy of each accumulator in memory and
// stored all of them on every group.
// FRESH: start from zero instead of loading sums.
// PREFETCH: also ask for line g of `prefetch` (64 bytes a group) to come into L2 at group g.
template <int ROWS, int PANELS, bool ACTIVATIONS_UNSIGNED, bool FRESH, bool PREFETCH, int... P, int... T>
inline void accumulate_unrolled(const uint8_t* a, int64_t lda, const int8_t* b, int64_t panel_stride, int64_t g0,
                                int64_t g1, int32_t* sums, const int8_t* prefetch, std::integer_sequence<int, P...>,
                                std::integer_sequence<int, T...>) {
  __m512i acc[ROWS * PANELS] = {(FRESH ? _mm512_setzero_si512() : _mm512_load_si512(sums + T * 16))...};
  for (int64_t g = g0; g < g1; ++g) {
    if constexpr (PREFETCH) _mm_prefetch(reinterpret_cast<const char*>(prefetch + g * kPanelGroupBytes), _MM_HINT_T1);
    const __m512i w[PANELS] = {_mm512_loadu_si512(b + P * panel_stride + g * kPanelGroupBytes)...};
    const uint8_t* ag = a + g * kInt8Group;
    if constexpr (ACTIVATIONS_UNSIGNED)
      ((acc[T] = _mm512_dpbusd_epi32(acc[T], broadcast4(ag + (T / PANELS) * lda), w[T % PANELS])), ...);
    else
      ((acc[T] = _mm512_dpbusd_epi32(acc[T], w[T % PANELS], broadcast4(ag + (T / PANELS) * lda))), ...);
  }
  (_mm512_store_si512(sums + T * 16, acc[T]), ...);
}

template <int ROWS, int PANELS, bool ACTIVATIONS_UNSIGNED = true, bool FRESH = false, bool PREFETCH = false>
inline void accumulate(const uint8_t* a, int64_t lda, const int8_t* b, int64_t panel_stride, int64_t g0, int64_t g1,
                       int32_t* sums, const int8_t* prefetch = nullptr) {
  accumulate_unrolled<ROWS, PANELS, ACTIVATIONS_UNSIGNED, FRESH, PREFETCH>(a, lda, b, panel_stride, g0, g1, sums, prefetch,
                                                          std::make_integer_sequence<int, PANELS>(),
                                                          std::make_integer_sequence<int, ROWS * PANELS>());
}

// The per-channel inputs of 16 consecutive channels (zero past n) and the mask of those that exist.
struct Channels16 {
  __m512 scale, bias;
  __m512i col_sums;
  __mmask16 mask;
};

inline Channels16 load_channels(const Int8Epilogue& e, int64_t c, int64_t n) {
  const int64_t count = std::min<int64_t>(kInt8Panel, n - c);
  const __mmask16 mask = __mmask16((1u << count) - 1u);
  return {_mm512_maskz_loadu_ps(mask, e.b_scale + c), e.bias ? _mm512_maskz_loadu_ps(mask, e.bias + c) : _mm512_setzero_ps(),
          _mm512_maskz_loadu_epi32(mask, e.b_col_sums + c), mask};
}

// Channels [c, c + 16) of one row before the ReLU: (sums - a_zero x column sums) x (a_scale x
// b_scale) + bias, in the reference's order of operations (so the floats are bit-identical).
// The row's zero point and scale come broadcast, for loops that reuse them across channels.
inline __m512 scaled_16(__m512i acc, __m512i a_zero, __m512 a_scale, const Channels16& ch) {
  const __m512i correction = _mm512_mullo_epi32(a_zero, ch.col_sums);
  const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, correction)), _mm512_mul_ps(a_scale, ch.scale));
  return _mm512_add_ps(v, ch.bias);
}
inline __m512 scaled_16(__m512i acc, int32_t a_zero, float a_scale, const Channels16& ch) {
  return scaled_16(acc, _mm512_set1_epi32(a_zero), _mm512_set1_ps(a_scale), ch);
}

// The epilogue of Int8Epilogue for channels [c, c + 16) of row i.
inline void finish_16(int64_t i, int64_t c, __m512i acc, const Int8Epilogue& e, const Channels16& ch) {
  __m512 v = scaled_16(acc, e.a_zero[i], e.a_scale[i], ch);
  if (e.relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
  if (e.out_f32) {
    _mm512_mask_storeu_ps(e.out_f32 + i * e.ldo + c, ch.mask, v);
    return;
  }
  v = _mm512_add_ps(_mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(e.out_inverse_scale)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                    _mm512_set1_ps(float(e.out_zero)));
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(float(e.out_max)));
  _mm512_mask_cvtusepi32_storeu_epi8(e.out_u8 + i * e.ldo + c, ch.mask, _mm512_cvtps_epi32(v));
}

// finish_rows for f32 outputs with the choices made once and the epilogue's pointers in locals,
// which no store of an output can change: finish_16 reloaded the pointers and tested relu and
// out_f32 for every 16 outputs (17 instructions where 9 do). On the 2-core Zen 5 host, at 1024^3
// (2 threads, 8 alternating runs of 60 calls each): 1.016x faster; no change at 64 and 256 x
// 4096^2, where the epilogue is a quarter as large a share. With no epilogue at all the same
// products ran 1.06-1.07x faster: the rest of that is the epilogue's arithmetic and stores.
// Row by row, each row's zero point and scale broadcast once for all its channels and its
// outputs written as one run, against panel by panel (a broadcast pair for every 16 outputs):
// 1.02-1.03x at 1024^3, 1.06-1.07x at 512 x 1536 x 576, 0.99-1.02x at 64 and 256 x 4096^2
// (SHRINK_ISA=vnni on the 2-core AMX host, alternating in one process, 2 threads).
// Rows [i, i + rows) x PANELS panels from channel c0 on, f32 outputs: row r's panel p sums at
// sums + (r * STRIDE + p) * 16, the panels' inputs in `channels`. The AMX GEMM's pending epilogue
// calls this directly with the inputs it loaded once for its block (STRIDE 2: 32-channel rows).
template <int PANELS, bool RELU, int STRIDE>
inline void finish_rows_f32_of(int64_t i, int64_t rows, int64_t c0, const int32_t* sums, const Channels16* channels,
                               const Int8Epilogue& e) {
  const int32_t* a_zero = e.a_zero + i;
  const float* a_scale = e.a_scale + i;
  const int64_t ldo = e.ldo;
  float* out = e.out_f32 + i * ldo + c0;
  for (int64_t r = 0; r < rows; ++r, out += ldo) {
    const __m512i zero = _mm512_set1_epi32(a_zero[r]);
    const __m512 scale = _mm512_set1_ps(a_scale[r]);
    for (int p = 0; p < PANELS; ++p) {
      __m512 v = scaled_16(_mm512_load_si512(sums + (r * STRIDE + p) * 16), zero, scale, channels[p]);
      if constexpr (RELU) v = _mm512_max_ps(v, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(out + p * kInt8Panel, channels[p].mask, v);
    }
  }
}

// STRIDE: the panels of a row in `sums`; PANELS of them are written (fewer where n ends first).
template <int PANELS, bool RELU, int STRIDE = PANELS>
inline void finish_rows_f32(int64_t i, int64_t rows, int64_t panel, int64_t n, const int32_t* sums,
                            const Int8Epilogue& e) {
  const int64_t c0 = panel * kInt8Panel;
  if constexpr (PANELS > 1)
    if (c0 + (PANELS - 1) * kInt8Panel >= n) return finish_rows_f32<PANELS - 1, RELU, STRIDE>(i, rows, panel, n, sums, e);
  Channels16 channels[PANELS];
  for (int p = 0; p < PANELS; ++p) channels[p] = load_channels(e, c0 + p * kInt8Panel, n);
  finish_rows_f32_of<PANELS, RELU, STRIDE>(i, rows, c0, sums, channels, e);
}

// The epilogue of rows [i, i + rows) x panels [panel, panel + PANELS) from their s32 sums
// ([row][panel][16 channels]).
template <int PANELS>
inline void finish_rows(int64_t i, int64_t rows, int64_t panel, int64_t n, const int32_t* sums, const Int8Epilogue& e) {
  if (e.out_f32) {
    if (e.relu)
      finish_rows_f32<PANELS, true>(i, rows, panel, n, sums, e);
    else
      finish_rows_f32<PANELS, false>(i, rows, panel, n, sums, e);
    return;
  }
  for (int p = 0; p < PANELS; ++p) {
    const int64_t c = (panel + p) * kInt8Panel;
    if (c >= n) break;
    const Channels16 ch = load_channels(e, c, n);
    for (int64_t r = 0; r < rows; ++r) finish_16(i + r, c, _mm512_load_si512(sums + (r * PANELS + p) * 16), e, ch);
  }
}

// Rows [i, i + ROWS) x panels [panel, panel + PANELS), all groups, epilogue included.
template <int ROWS, int PANELS>
inline void tile(int64_t i, int64_t panel, int64_t n, int64_t groups, const uint8_t* a, int64_t lda,
                 const int8_t* packed, const Int8Epilogue& e, const int8_t* prefetch) {
  alignas(64) int32_t sums[ROWS * PANELS * 16];
  const int64_t panel_stride = groups * kPanelGroupBytes;
  const int8_t* b = packed + panel * panel_stride;
  if (prefetch)
    accumulate<ROWS, PANELS, true, /*FRESH=*/true, /*PREFETCH=*/true>(a + i * lda, lda, b, panel_stride, 0, groups, sums,
                                                                     prefetch);
  else
    accumulate<ROWS, PANELS, true, /*FRESH=*/true>(a + i * lda, lda, b, panel_stride, 0, groups, sums);
  finish_rows<PANELS>(i, ROWS, panel, n, sums, e);
}

// The row tiles of `rows` rows: calls body(std::integral_constant<int, R>(), r) for TILE_ROWS rows
// at a time from r = 0, then once for the 1 to TILE_ROWS - 1 left. The int8 GEMM's tiles are 6 x 4:
// 24 accumulators, 4 weight vectors and one broadcast register reused row after row (broadcast4
// at its point of use; with the rows' broadcasts all loaded first, 6 x 4 had spilled). The int4
// prefill keeps 5 x 4 (its per-group fold of 6 rows ran 0.86-0.89x as fast at groups of 32).
constexpr int kTileRows = 6;

template <int R, class Body>
inline void row_remainder(int64_t left, int64_t r, const Body& body) {
  if constexpr (R > 0) {
    if (left == R) return body(std::integral_constant<int, R>(), r);
    row_remainder<R - 1>(left, r, body);
  }
}

template <int TILE_ROWS = kTileRows, class Body>
inline void each_row_tile(int64_t rows, const Body& body) {
  int64_t r = 0;
  for (; r + TILE_ROWS <= rows; r += TILE_ROWS) body(std::integral_constant<int, TILE_ROWS>(), r);
  row_remainder<TILE_ROWS - 1>(rows - r, r, body);
}

// Rows [i, i + rows) x PANELS panels, in tiles of up to kTileRows rows.
template <int PANELS>
inline void tile_rows(int64_t i, int64_t rows, int64_t panel, int64_t n, int64_t groups, const uint8_t* a, int64_t lda,
                      const int8_t* packed, const Int8Epilogue& e, int64_t next_panels) {
  const int64_t panel_stride = groups * kPanelGroupBytes;
  const int8_t* own = packed + panel * panel_stride;
  each_row_tile(rows, [&](auto tile_rows, int64_t r) {
    const int64_t ahead = r / kTileRows - 1;  // the next block's panel this tile asks for
    const int8_t* prefetch = ahead >= 0 && ahead < next_panels ? own + (PANELS + ahead) * panel_stride : nullptr;
    tile<decltype(tile_rows)::value, PANELS>(i + r, panel, n, groups, a, lda, packed, e, prefetch);
  });
}

// Rows [i, i + rows) x panels [panel, panel + panels), panels <= 4, whole k per tile.
// next_panels: how many panels follow this block in the same walk (their weights are asked for
// into L2 while the second to fifth row tiles run, one panel a tile, a line a group); 0: none.
inline void tiles(int64_t i, int64_t rows, int64_t panel, int64_t panels, int64_t n, int64_t groups, const uint8_t* a,
                  int64_t lda, const int8_t* packed, const Int8Epilogue& e, int64_t next_panels = 0) {
  switch (panels) {
    case 4: tile_rows<4>(i, rows, panel, n, groups, a, lda, packed, e, next_panels); break;
    case 3: tile_rows<3>(i, rows, panel, n, groups, a, lda, packed, e, next_panels); break;
    case 2: tile_rows<2>(i, rows, panel, n, groups, a, lda, packed, e, next_panels); break;
    case 1: tile_rows<1>(i, rows, panel, n, groups, a, lda, packed, e, next_panels); break;
    default: break;
  }
}

}  // namespace shrink::kernel_variants::vnni
