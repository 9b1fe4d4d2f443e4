// Q8_0 activations times int8 row weights with AVX512-VNNI (gemm_q8_0_i8, registry.h): the decode
// product of an int8 output layer. From the 4-row panels (pack_row_panels: per 32-value block, the
// four rows' 32-byte runs one after another), one 64-byte load holds a block of two rows; signed
// times signed goes through vpdpbusd (u8 x s8) as w ^ 0x80 = w + 128, unsigned, times a: each
// lane's sum then carries 128 x the sum of its four activations, which the block's accumulation
// starts from, negated (one vpdpbusd of 0x80 bytes and a subtraction a block, shared by every
// row), so the sums are exact and equal to the signed products'. Lanes 0-7 of a block's sums
// belong to the first row and 8-15 to the second; each block's sums are converted and multiplied
// by the block's activation scale. Per 64 weights that is 4 vector operations (xor, vpdpbusd,
// convert, multiply-add) where |w| times a with w's sign took 6 (a sign mask, a masked negation and
// an absolute value; AVX-512 has no vpsignb) and the AVX2 kernel 14; the output layer of a small
// model is read from the last-level cache fast enough for the count to matter. Rows without
// panels, and the last n % 4 rows, go to the AVX2 kernel.
#include <immintrin.h>

#include <algorithm>

#include "kernels/kernel_variants.h"
#include "kernels/vnni/panel_row_sums.h"
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
  const __m512i zero = _mm512_setzero_si512(), flip = _mm512_set1_epi8(char(0x80));
  const int8_t* base[STREAMS];
  // Stream s's rows 0 and 1 (h = 0) and 2 and 3 (h = 1), as named variables: GCC kept an array of
  // them in memory, storing all four on every block.
  static_assert(STREAMS <= 2);
  __m512 acc00 = _mm512_setzero_ps(), acc01 = acc00, acc10 = acc00, acc11 = acc00;
  const auto acc_of = [&](int s, int h) -> __m512& { return s == 0 ? (h == 0 ? acc00 : acc01) : (h == 0 ? acc10 : acc11); };
  for (int s = 0; s < STREAMS; ++s) base[s] = panels + c0[s] * k;
  const BlockQ8_0* row = a + i * blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    const __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[b].qs)));
    const __m512i unbias = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, flip, x));  // -128 x each lane's 4 values
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(row[b].d));
    for (int s = 0; s < STREAMS; ++s) {
      const int8_t* run = base[s] + b * 128;
      _mm_prefetch(reinterpret_cast<const char*>(run + 2048), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(run + 2048 + 64), _MM_HINT_T0);
      for (int h = 0; h < 2; ++h) {
        const __m512i v = _mm512_xor_si512(_mm512_loadu_si512(run + 64 * h), flip);  // w + 128 as u8
        const __m512i dot = _mm512_dpbusd_epi32(unbias, v, x);
        acc_of(s, h) = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), d, acc_of(s, h));
      }
    }
  }
  for (int s = 0; s < STREAMS; ++s) {
    const __m128 sums = vnni::panel_row_totals(acc_of(s, 0), acc_of(s, 1));
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
