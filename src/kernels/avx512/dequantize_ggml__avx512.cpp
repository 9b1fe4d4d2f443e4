// Q4_0 and Q8_0 blocks to f32 with AVX-512: one block (32 values) per step. Integer to float
// is exact and there is one multiply, so results equal the scalar reference bit for bit.
#include <immintrin.h>

#include <cstring>

#include "kernels/kernel_variants.h"
#include "shrink/core/half.h"
#include "shrink/kernels/ggml_formats.h"

namespace shrink::kernel_variants {

void dequantize_q4_0__avx512(const void* blocks, float* dst, int64_t n) {
  const auto* bytes = static_cast<const uint8_t*>(blocks);
  const __m128i low_mask = _mm_set1_epi8(0xf), eight = _mm_set1_epi8(8);
  for (int64_t b = 0; b < n / 32; ++b, bytes += sizeof(BlockQ4_0), dst += 32) {
    uint16_t d_bits;
    std::memcpy(&d_bits, bytes, 2);
    const __m512 d = _mm512_set1_ps(f16_to_f32(d_bits));
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + 2));
    const __m128i low = _mm_sub_epi8(_mm_and_si128(packed, low_mask), eight);
    const __m128i high = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(packed, 4), low_mask), eight);
    _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(low)), d));
    _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(high)), d));
  }
}

void dequantize_q8_0__avx512(const void* blocks, float* dst, int64_t n) {
  const auto* bytes = static_cast<const uint8_t*>(blocks);
  for (int64_t b = 0; b < n / 32; ++b, bytes += sizeof(BlockQ8_0), dst += 32) {
    uint16_t d_bits;
    std::memcpy(&d_bits, bytes, 2);
    const __m512 d = _mm512_set1_ps(f16_to_f32(d_bits));
    for (int half = 0; half < 2; ++half) {
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + 2 + 16 * half));
      _mm512_storeu_ps(dst + 16 * half, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d));
    }
  }
}

}  // namespace shrink::kernel_variants
