// exp of 8 floats with AVX2, after Cephes' expf (S. L. Moshier): x = n ln2 + r with ln2 split in
// two for an exact reduction, exp(r) by its degree-6 minimax polynomial, 2^n through the exponent
// bits (a few ulp over the range used). Shared by the activation and attention kernels (include
// only from files compiled with the AVX2 flags).
#pragma once
#include <immintrin.h>

#include <cmath>

namespace shrink::kernel_variants::avx2 {

inline __m256 exp8(__m256 x) {
  // Beyond +-88.7 expf overflows or underflows; clamp so that 2^n stays a normal float.
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

// exp itself: +inf past ln(FLT_MAX), 0 below the clamp (where expf is at most 1.2e-38).
inline __m256 exp_saturating8(__m256 x) {
  const __m256 y = _mm256_blendv_ps(exp8(x), _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, _mm256_set1_ps(88.7228394f), _CMP_GT_OQ));
  return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ), y);
}

// NaN in, NaN out (the clamp in exp8 would otherwise turn it into a number).
template <__m256 (*F)(__m256)> __m256 keep_nan(__m256 x) {
  return _mm256_blendv_ps(F(x), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

}  // namespace shrink::kernel_variants::avx2
