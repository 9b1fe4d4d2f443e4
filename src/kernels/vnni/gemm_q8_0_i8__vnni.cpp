// Q8_0 activations times int8 row weights with AVX512-VNNI (gemm_q8_0_i8, registry.h): the decode
// product of an int8 output layer. From the 4-row panels (pack_row_panels: per 32-value block, the
// four rows' 32-byte runs one after another), one 64-byte load holds a block of two rows; signed
// times signed goes through vpdpbusd as |w| (unsigned; -128 becomes 128) times a with w's sign
// (AVX-512 has no vpsignb: a masked subtract from zero where w < 0; Q8_0 activations lie in
// [-127, 127], so the negation never overflows), exact in s32. Lanes 0-7 of a
// block's sums belong to the first row and 8-15 to the second; each block's sums are converted
// and multiplied by the block's activation scale. Per 64 weights that is 7 instructions where the
// AVX2 kernel needs 14, and the output layer of a small model is read from the last-level cache
// fast enough for the instruction count to matter. Rows without panels, and the last n % 4 rows,
// go to the AVX2 kernel.
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx2/horizontal.h"
#include "kernels/kernel_variants.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/ggml_formats.h"

namespace shrink::kernel_variants {
namespace {

// Activation row i times the 4-row panels at rows c0[s] (s < STREAMS, far apart in memory: two
// sequential streams keep more reads in flight than one, as in the AVX2 kernel).
template <int STREAMS>
void panel_rows(int64_t i, const int64_t (&c0)[STREAMS], const BlockQ8_0* a, const int8_t* panels,
                const float* w_scale, int64_t k, const float* bias, float* y, int64_t ldy) {
  const int64_t blocks = k / 32;
  const __m512i zero = _mm512_setzero_si512();
  const int8_t* base[STREAMS];
  __m512 acc[STREAMS][2];  // rows 0 and 1, rows 2 and 3
  for (int s = 0; s < STREAMS; ++s) {
    base[s] = panels + c0[s] * k;
    acc[s][0] = acc[s][1] = _mm512_setzero_ps();
  }
  const BlockQ8_0* row = a + i * blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    const __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[b].qs)));
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(row[b].d));
    for (int s = 0; s < STREAMS; ++s) {
      const int8_t* run = base[s] + b * 128;
      _mm_prefetch(reinterpret_cast<const char*>(run + 2048), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(run + 2048 + 64), _MM_HINT_T0);
      for (int h = 0; h < 2; ++h) {
        const __m512i v = _mm512_loadu_si512(run + 64 * h);
        const __m512i signed_x = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(v), zero, x);
        const __m512i dot = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(v), signed_x);
        acc[s][h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), d, acc[s][h]);
      }
    }
  }
  for (int s = 0; s < STREAMS; ++s) {
    // Row r's partial sums are lanes 0-7 or 8-15 of its accumulator.
    const __m256 rows[4] = {_mm512_extractf32x8_ps(acc[s][0], 0), _mm512_extractf32x8_ps(acc[s][0], 1),
                            _mm512_extractf32x8_ps(acc[s][1], 0), _mm512_extractf32x8_ps(acc[s][1], 1)};
    const __m128 sums = avx2::sum_four(rows);
    const int64_t c = c0[s];
    __m128 out = _mm_mul_ps(_mm_loadu_ps(w_scale + c), sums);
    if (bias) out = _mm_add_ps(out, _mm_loadu_ps(bias + c));
    _mm_storeu_ps(y + i * ldy + c, out);
  }
}

}  // namespace

void gemm_q8_0_i8__vnni(int64_t m, const void* a_blocks, const int8_t* w, const int8_t* panels, const float* w_scale,
                        int64_t n, int64_t k, const float* bias, float* y, int64_t ldy) {
  if (!panels) return gemm_q8_0_i8__avx2(m, a_blocks, w, panels, w_scale, n, k, bias, y, ldy);
  const auto* a = static_cast<const BlockQ8_0*>(a_blocks);
  const int64_t full_panels = n / 4;
  static ThreadSpeeds speeds;
  parallel_for_balanced(0, full_panels, 16, speeds, [&](int64_t first, int64_t last) {
    const int64_t half = (last - first) / 2;  // the share's first half beside its second
    for (int64_t j = 0; j < half; ++j)
      for (int64_t i = 0; i < m; ++i)
        panel_rows<2>(i, {(first + j) * 4, (first + half + j) * 4}, a, panels, w_scale, k, bias, y, ldy);
    if ((last - first) % 2)
      for (int64_t i = 0; i < m; ++i) panel_rows<1>(i, {(last - 1) * 4}, a, panels, w_scale, k, bias, y, ldy);
  });
  if (const int64_t c = full_panels * 4; c < n)  // the last n % 4 rows, one by one
    gemm_q8_0_i8__avx2(m, a_blocks, w + c * k, nullptr, w_scale + c, n - c, k, bias ? bias + c : nullptr, y + c, ldy);
}

}  // namespace shrink::kernel_variants
