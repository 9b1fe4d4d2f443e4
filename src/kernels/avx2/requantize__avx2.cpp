// The requantizing u8 add, 16 values per step: the reference's operations in the same order
// (no FMA: the build turns contraction off), so the bytes are identical.
#include <immintrin.h>

#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {
namespace {

// 8 bytes -> 8 floats.
__m256 load_8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

}  // namespace

void add_u8__avx2(const uint8_t* a, const uint8_t* b, int64_t n, const AddU8Params& p, uint8_t* y) {
  const __m256 sa = _mm256_set1_ps(p.a_scale), sb = _mm256_set1_ps(p.b_scale), offset = _mm256_set1_ps(p.offset);
  const __m256 low = _mm256_set1_ps(p.low), inverse = _mm256_set1_ps(p.inverse_scale), zero = _mm256_set1_ps(p.zero);
  const __m256 t_lo = _mm256_set1_ps(-1.f - p.zero), t_hi = _mm256_set1_ps(p.max + 1.f - p.zero);
  const __m256 magic = _mm256_set1_ps(kRoundingMagic), top = _mm256_set1_ps(p.max), bottom = _mm256_setzero_ps();
  auto eight = [&](int64_t i) {
    __m256 v = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(load_8(a + i), sa), _mm256_mul_ps(load_8(b + i), sb)), offset);
    v = _mm256_max_ps(v, low);
    __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, inverse), t_lo), t_hi);
    t = _mm256_add_ps(_mm256_sub_ps(_mm256_add_ps(t, magic), magic), zero);
    return _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(t, bottom), top));  // integral already
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i lo = eight(i), hi = eight(i + 8);  // 8 x i32 each, values in [0, 255]
    const __m256i words = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xd8);
    const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), bytes);
  }
  add_u8__ref(a + i, b + i, n - i, p, y + i);
}

}  // namespace shrink::kernel_variants
