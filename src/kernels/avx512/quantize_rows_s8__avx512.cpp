// quantize_rows_s8 (int4_gemm.h) with AVX-512: the row's largest magnitude 16 values a step, then
// each group's codes 16 at a time (any group size: a group's last step under a mask), narrowed
// with one vpmovdb each, and the group's sum reduced from the codes' i32 lanes. Bit-identical to
// the reference: the same scale and inverse, x * inverse rounded to nearest even in the
// conversion itself (|x * inverse| <= 127, so it is exact and the narrowing never saturates).
// A decoded token quantizes one row per product (k = 576 or 1536 for SmolLM2), on the critical
// path before the threads start: the AVX2 loop (8 values a step, a rounding and a conversion,
// two packs and a permute per 32) took 0.18 us for 576 values where this takes 0.14.
#include <immintrin.h>

#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {

void quantize_rows_s8__avx512(const float* x, int64_t m, int64_t k, int64_t group, int8_t* q, float* scale,
                              int32_t* group_sums) {
  const auto mask_below = [](int64_t count) { return count >= 16 ? __mmask16(0xffff) : __mmask16((1u << count) - 1u); };
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  const int64_t groups = k / group;
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * k;
    __m512 amax_v = _mm512_setzero_ps();
    for (int64_t j = 0; j < k; j += 16)
      amax_v = _mm512_max_ps(amax_v, _mm512_and_ps(_mm512_maskz_loadu_ps(mask_below(k - j), row + j), abs_mask));
    const float amax = _mm512_reduce_max_ps(amax_v);
    scale[i] = amax / 127.f;
    const __m512 inverse = _mm512_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
    int8_t* codes = q + i * k;
    for (int64_t g = 0; g < groups; ++g) {
      __m512i sum = _mm512_setzero_si512();
      const int64_t end = (g + 1) * group;
      for (int64_t j = g * group; j < end; j += 16) {
        const __mmask16 mask = mask_below(end - j);
        const __m512i code = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, row + j), inverse),
                                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        sum = _mm512_add_epi32(sum, code);  // masked-off lanes load as 0 and add nothing
        _mm_mask_storeu_epi8(codes + j, mask, _mm512_cvtepi32_epi8(code));
      }
      group_sums[i * groups + g] = _mm512_reduce_add_epi32(sum);
    }
  }
}

}  // namespace shrink::kernel_variants
