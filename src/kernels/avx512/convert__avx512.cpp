// f16/bf16 <-> f32 with AVX-512, 16 values per step, masked tails (no scalar remainder).
#include <immintrin.h>

#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {
namespace {
__mmask16 tail_mask(int64_t remaining) {
  return remaining >= 16 ? __mmask16(0xffff) : __mmask16((1u << remaining) - 1);
}
}  // namespace

void convert_f16_to_f32__avx512(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = tail_mask(n - i);
    const __m256i half = _mm256_maskz_loadu_epi16(mask, src + i);
    _mm512_mask_storeu_ps(dst + i, mask, _mm512_cvtph_ps(half));
  }
}

void convert_bf16_to_f32__avx512(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = tail_mask(n - i);
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, src + i));
    _mm512_mask_storeu_ps(dst + i, mask, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
  }
}

// Round to nearest even in integer arithmetic (the hardware VCVTNEPS2BF16 flushes denormals,
// which the reference does not), quieting NaNs like the reference.
void convert_f32_to_bf16__avx512(const float* src, uint16_t* dst, int64_t n) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
  const __m512i quiet = _mm512_set1_epi32(0x40);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = tail_mask(n - i);
    const __m512i x = _mm512_castps_si512(_mm512_maskz_loadu_ps(mask, src + i));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), one);
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(x, _mm512_add_epi32(bias, lsb)), 16);
    const __mmask16 is_nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, abs_mask), inf);
    rounded = _mm512_mask_or_epi32(rounded, is_nan, _mm512_srli_epi32(x, 16), quiet);
    _mm256_mask_storeu_epi16(dst + i, mask, _mm512_cvtepi32_epi16(rounded));
  }
}

}  // namespace shrink::kernel_variants
