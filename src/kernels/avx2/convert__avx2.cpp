// f16/bf16 <-> f32 with AVX2 + F16C, 8 values per step; the tail goes to the scalar reference.
#include <immintrin.h>

#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {

void convert_f16_to_f32__avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  convert_f16_to_f32__ref(src + i, dst + i, n - i);
}

void convert_bf16_to_f32__avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
  }
  convert_bf16_to_f32__ref(src + i, dst + i, n - i);
}

void convert_f32_to_f16__avx2(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  convert_f32_to_f16__ref(src + i, dst + i, n - i);
}

}  // namespace shrink::kernel_variants
