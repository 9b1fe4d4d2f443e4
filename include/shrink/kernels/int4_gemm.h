// int4 group-wise weights times int8 activations: the LLM decode (M = 1) and prefill cases.
//
// Weights W[n][k] ≈ q[n][k] * scale[n][g] + min[n][g], q in [0, 15], g = k / group (group a
// multiple of 32). This covers GPTQ/AWQ (min = -zero * scale) and ggml's Q4_1. Storage, row by
// row: k/2 bytes of nibbles, each 32 values in ggml's order (byte j holds value j in its low
// nibble and value j + 16 in its high nibble); scales and mins as f16, [n][k / group].
//
// Activations are quantized per row to s8 (symmetric, [-127, 127]) with the sum of each group's
// values kept, so a group contributes scale * sum(q * a) + min * sum(a); u4 x s8 products
// (|15 * 127 * 2| < 32767) never saturate AVX2's vpmaddubsw.
#pragma once
#include <cstdint>
#include <vector>

namespace shrink {

struct Int4Weights {
  const uint8_t* nibbles;   // n * k / 2 bytes
  const uint16_t* scales;   // f16, n * k / group
  const uint16_t* mins;     // f16, n * k / group
  int64_t n, k, group;
  // Optional: the same nibbles in panels of 4 rows (pack_int4_panels), read by the decode
  // kernels when given; nullptr: rows only. Rows 4p..4p+3 occupy the same byte range in both
  // layouts, so a slice of whole panels is the same pointer offset in each.
  const uint8_t* panels = nullptr;
  // Optional, with panels and groups of 32: the scales in the panels' order
  // (pack_int4_panel_scales), which the VNNI decode kernel needs; rows 4p..4p+3 again occupy the
  // same range as in `scales`.
  const uint16_t* panel_scales = nullptr;
  // Optional: the whole matrix (nibbles, scales and mins) in blocks of block_rows rows
  // (pack_int4_row_blocks), which the decode kernels read instead of the panels: 8 rows the AVX2
  // kernel, 16 the AVX512-VNNI one. A slice of it starts at a multiple of block_rows rows
  // (int4_row_block_bytes apart).
  const uint8_t* row_blocks = nullptr;
  int64_t block_rows = 0;
};

// Rows r0 .. r1 of w, every layout it carries offset alike; r0 a multiple of int4_slice_rows(w).
Int4Weights int4_rows(const Int4Weights& w, int64_t r0, int64_t r1);
// The rows a slice of w must start at a multiple of: its row blocks' rows, else a panel's 4.
inline int64_t int4_slice_rows(const Int4Weights& w) { return w.row_blocks ? w.block_rows : 4; }

// Owning storage of int4 weights.
struct Int4Storage {
  std::vector<uint8_t> nibbles;
  std::vector<uint16_t> scales, mins;
  int64_t n = 0, k = 0, group = 0;
  Int4Weights view() const { return {nibbles.data(), scales.data(), mins.data(), n, k, group}; }
};

// llama.cpp's blocks as int4 weights of group 32: the nibbles keep their order; Q4_1's d and m
// become scale and min; Q4_0's (q - 8) * d becomes q * d + (-8 d), exact in f16. `blocks` holds
// n rows of k / 32 blocks (a GGUF tensor of shape [n, k]).
Int4Storage int4_from_q4_0(const void* blocks, int64_t n, int64_t k);
Int4Storage int4_from_q4_1(const void* blocks, int64_t n, int64_t k);

// f32 weights [n][k] -> int4 weights, per group in the GPTQ/AWQ convention (the range widened to
// include 0, an all-zero group taken as [-1, 1]): scale = (max - min) / 15, zero = nearbyint(-min /
// scale), q = clamp(nearbyint(x / scale) + zero, 0, 15); stored as f16 scale and min = -zero * scale.
using QuantizeInt4Fn = void (*)(const float* w, int64_t n, int64_t k, int64_t group, uint8_t* nibbles, uint16_t* scales,
                                uint16_t* mins);

// q is [n][k] with values 0..15; writes n * k / 2 bytes.
void pack_int4_nibbles(const uint8_t* q, int64_t n, int64_t k, uint8_t* nibbles);

// The decode layout: for every 4 rows, their 32-byte runs (64 weights) of each column block
// side by side, panels[(4p + c) * k/2 ...] = run j of row 4p + c at offset (4j + c) * 32 within
// panel p; the last n % 4 rows stay as they are. One panel is then one sequential stream (the
// row layout is four streams k/2 bytes apart, which kept ~25% fewer bytes in flight here).
// Needs k % 64 == 0; writes n * k / 2 bytes.
void pack_int4_panels(const uint8_t* nibbles, int64_t n, int64_t k, uint8_t* panels);
// The scales of groups of 32 in the order the VNNI decode kernel multiplies them: for every 4-row
// panel and each of its two pairs of rows (2h, 2h + 1), for t = 0 .. groups / 2 - 1 the four
// scales [row 2h: groups 2t, 2t + 1; row 2h + 1: groups 2t, 2t + 1], so that one step of the
// kernel (64 weights of each row) takes one 8-byte run of each pair; the last n % 4 rows stay as
// they are. Needs group == 32 and k % 64 == 0; writes n * k / 32 values.
void pack_int4_panel_scales(const uint16_t* scales, int64_t n, int64_t k, int64_t group, uint16_t* panel_scales);
// The row blocks of the decode kernels, `rows` = 8 (AVX2, 32-byte lines) or 16 (AVX512-VNNI,
// 64-byte lines) rows a block, one sequential stream a block: for each group g of rows
// rows * b .. rows * b + rows - 1, group / 8 lines of 4 * rows bytes, line i's 4-byte lane r
// holding row rows * b + r's nibble bytes 4 (g * group / 8 + i) .. + 3 (so its low nibbles are 4
// consecutive values of a 32-value block and its high nibbles the 4 values 16 further on), then
// one line of the rows' f16 scales of group g followed by their mins. A load is then `rows` rows'
// products against the same 8 activations, one row a lane: the scales apply to a whole vector
// once a group and no row's lanes need summing at the end, which took the 4-row panel kernels'
// time at SmolLM2's widths. Needs int4_row_blocks_fit(w, rows); writes
// int4_row_block_bytes(k, group, rows) * n / rows.
// Row blocks fit when rows is 8 or 16, n % rows == 0, the group 32, 64, 128 or 256 and k % group == 0.
bool int4_row_blocks_fit(const Int4Weights& w, int64_t rows);
int64_t int4_row_block_bytes(int64_t k, int64_t group, int64_t rows);
void pack_int4_row_blocks(const Int4Weights& w, int64_t rows, uint8_t* blocks);
// The same arrangement for any rows of row_bytes bytes (a multiple of 32): the int8 head's rows
// (gemm_q8_0_i8) use it with one 32-byte run per Q8_0 block.
void pack_row_panels(const uint8_t* rows, int64_t n, int64_t row_bytes, uint8_t* panels);

// Per-row symmetric s8: scale = max|x| / 127, q = nearbyint(x / scale) (0 for an all-zero row),
// and group_sums[i][g] = sum of q over group g. k must be a multiple of group.
using QuantizeRowsS8Fn = void (*)(const float* x, int64_t m, int64_t k, int64_t group, int8_t* q, float* scale,
                                  int32_t* group_sums);

// out[i][c] = a_scale[i] * sum_g (scale[c][g] * dot_g + min[c][g] * group_sums[i][g]) + bias[c]
// for m rows of quantized activations (q [m][k], a_scale [m], group_sums [m][k / group]).
using GemmQ4S8Fn = void (*)(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums,
                            const Int4Weights& w, const float* bias, float* out, int64_t ldo);

// The same weights times f32 activations, dequantizing on the fly (no activation rounding):
// out[i][c] = sum_g (scale[c][g] * sum_j q[c][j] x[i][j] + min[c][g] * sum_j x[i][j]) + bias[c].
using GemmQ4F32Fn = void (*)(int64_t m, const float* x, const Int4Weights& w, const float* bias, float* out, int64_t ldo);

}  // namespace shrink
