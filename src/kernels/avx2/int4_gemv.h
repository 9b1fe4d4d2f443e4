// The int4 decode GEMV's pieces shared by the AVX2 kernels (int4_gemm__avx2.cpp, which holds the
// driver) and the AVX512-VNNI panel kernel (vnni/int4_gemm__vnni.cpp): the shape test, the
// driver that takes a panel kernel, the split of a thread's panels into two streams, the panel
// scales in f32 and the four-row epilogue. Include only from files compiled
// with the AVX2 flags.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/avx2/horizontal.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink::kernel_variants::avx2 {

// Needs k % 64 == 0 and a group of 32 or a multiple of 64.
inline bool gemv_fits(const Int4Weights& w) { return w.k % 64 == 0 && (w.group == 32 || w.group % 64 == 0); }

// The floats one panel's f32 scales take in row_scales: its 4 * groups, rounded up to whole
// cache lines, so that the two panels' scales never share a line. At k = 576 (36 scales) the
// second panel's had begun on the line holding the end of the first's, which the conversion's
// masked tail store writes. With a line each (and the buffer in lines of its own, line_buffer.h;
// not measured apart) SmolLM2's per-token products took 0.95x the time (weights resident in L3,
// 2 threads, alternating against the previous kernel in one process).
inline int64_t panel_scale_floats(const Int4Weights& w) { return (4 * (w.k / w.group) + 15) / 16 * 16; }

// Panels [first, last) (4 rows each) of one thread's share of a GEMV: a = the reordered
// activations (see gemv_q4s8), float_sums = each group's activation sum as f32, row_scales =
// room for 2 panels' f32 scales (2 * panel_scale_floats(w) floats starting on a cache line,
// panel s's at s * panel_scale_floats(w)).
using GemvPanelShare = void (*)(int64_t first, int64_t last, const int8_t* a, float a_scale, const float* float_sums,
                                const Int4Weights& w, const float* bias, float* out, float* row_scales);

// The f32 scales of the four rows c0 .. c0 + 3, [row][group], into `to` (4 * groups floats).
inline void panel_scales_f32(const Int4Weights& w, int64_t c0, float* to) {
  const int64_t count = 4 * (w.k / w.group);
  const uint16_t* scales = w.scales + c0 * (w.k / w.group);  // the four rows' scales, one after another
  int64_t i = 0;
  for (; i + 8 <= count; i += 8)
    _mm256_storeu_ps(to + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + i))));
  for (; i < count; ++i) to[i] = _cvtsh_ss(scales[i]);
}

// Prefetches the lines of the scales (`scales`: w.scales, or w.panel_scales when the kernel reads
// those) and the mins of the panel at rows c0 + 8, two panels ahead in the stream, that begin
// inside it (the line a panel's scales begin in is the one the panel before ended in). A panel's
// scales and mins are small (72 bytes each at k = 576, groups of 64) and advance slowly beside its
// weights, and the hardware's prefetchers left them to miss. With the weights cold (rotating
// through 128 MB, 2 threads, alternating in one process, on the Zen 5 host) the VNNI GEMV ran
// 1.09-1.24x as fast at 1536 x 576 g64, 1.06-1.12x at 576 x 1536 g128, 1.22-1.40x at SmolLM2's
// shapes in g32 and 1.08-1.14x at 4096^2 g128; with the weights in L2 0.89-0.99x, in L3
// 0.94-1.02x (a model whose int4 weights fit the last-level cache may lose a little). The AVX2
// kernels there (SHRINK_ISA=avx2): SmolLM2's shapes cold 1.09-1.24x, but 4096^2 g128 0.92-0.95x
// (a larger panel's scales span four lines; kept for the decode shapes).
// The prefetches are asm statements: GCC 12 at -O3 dropped a loop of _mm_prefetch written in an
// inline function like this one, and the binary came out byte for byte as without it (why, not
// pinned down: -fno-finite-loops and -fno-ipa-pure-const did not keep it).
// Both always inlined: an inline function emitted out of line by the files compiled with wider
// instruction sets than AVX2 could be the copy the linker keeps for all.
[[gnu::always_inline]] inline void prefetch_lines_beginning_in(const void* begin, int64_t bytes) {
  const char* p = static_cast<const char*>(begin);
  for (int64_t at = -int64_t(reinterpret_cast<uintptr_t>(p)) & 63; at < bytes; at += 64)
    asm volatile("prefetcht0 %0" : : "m"(p[at]));
}
// `groups` = w.k / w.group, as each caller holds it.
[[gnu::always_inline]] inline void prefetch_panel_scales_ahead(const Int4Weights& w, const uint16_t* scales,
                                                               int64_t groups, int64_t c0) {
  const int64_t ahead = std::min<int64_t>(c0 + 8, w.n - 4) * groups;
  prefetch_lines_beginning_in(scales + ahead, 2 * 4 * groups);
  prefetch_lines_beginning_in(w.mins + ahead, 2 * 4 * groups);
}

// The full panels [first, last) of one thread's share: its first half beside its second half,
// then the odd one out. Kernel::run<S>(c0[S], ...) runs the 4-row panels at rows c0[0..S) side
// by side.
template <class Kernel>
void gemv_panel_share(int64_t first, int64_t last, const int8_t* a, float a_scale, const float* float_sums,
                      const Int4Weights& w, const float* bias, float* out, float* row_scales) {
  const int64_t half = (last - first) / 2;
  for (int64_t i = 0; i < half; ++i)
    Kernel::template run<2>({(first + i) * 4, (first + half + i) * 4}, a, a_scale, float_sums, w, bias, out, row_scales);
  if ((last - first) % 2) Kernel::template run<1>({(last - 1) * 4}, a, a_scale, float_sums, w, bias, out, row_scales);
}

// out = the GEMV of one quantized activation row (q, a_scale, group_sums as quantize_rows_s8
// wrote them) with w (gemv_fits(w)); panel_share runs the full 4-row panels when w has the
// panel layout (nullptr: the AVX2 panel kernels), the AVX2 row kernels the rest.
void gemv_q4s8(const int8_t* q, float a_scale, const int32_t* group_sums, const Int4Weights& w, const float* bias,
               float* out, GemvPanelShare panel_share);

// out[c0 .. c0 + 3] = a_scale * total + bias[c0 .. c0 + 3] (no bias: + 0), the four-row
// epilogues' last step.
inline void store_four_rows(int64_t c0, __m128 total, float a_scale, const float* bias, float* out) {
  const __m128 b = bias ? _mm_loadu_ps(bias + c0) : _mm_setzero_ps();
  _mm_storeu_ps(out + c0, _mm_add_ps(_mm_mul_ps(_mm_set1_ps(a_scale), total), b));
}

// out[c] for the four rows c0 .. c0 + 3 = a_scale * (the row's scaled dot products, summed over
// the lanes of acc[c - c0] + sum_g min[c][g] * float_sums[g]) + bias[c]: one tree of horizontal
// adds for the four accumulators and for the four min dot products, one 4-wide multiply-add and
// store (four one-row epilogues had cost about a quarter of a 576-wide row's whole time).
inline void finish_four_rows(int64_t c0, const __m256 (&acc)[4], float a_scale, const float* float_sums,
                             const Int4Weights& w, const float* bias, float* out) {
  const int64_t groups = w.k / w.group;
  const uint16_t* mins = w.mins + c0 * groups;  // the four rows' mins, one after another
  __m256 min_acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t g = 0;
  for (; g + 8 <= groups; g += 8) {
    const __m256 sums = _mm256_loadu_ps(float_sums + g);
    for (int col = 0; col < 4; ++col)
      min_acc[col] = _mm256_fmadd_ps(
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mins + col * groups + g))), sums, min_acc[col]);
  }
  alignas(16) float min_part[4];
  _mm_store_ps(min_part, sum_four(min_acc));
  for (; g < groups; ++g)
    for (int col = 0; col < 4; ++col) min_part[col] += _cvtsh_ss(mins[col * groups + g]) * float_sums[g];
  store_four_rows(c0, _mm_add_ps(sum_four(acc), _mm_load_ps(min_part)), a_scale, bias, out);
}

}  // namespace shrink::kernel_variants::avx2
