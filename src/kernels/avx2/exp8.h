// exp of 8 floats with AVX2, after Cephes' expf (S. L. Moshier): x = n ln2 + r with ln2 split in
// two for an exact reduction, exp(r) by its degree-6 minimax polynomial, 2^n through the exponent
// bits (a few ulp over the range used). Shared by the activation and attention kernels (include
// only from files compiled with the AVX2 flags).
#pragma once
#include <immintrin.h>

#include <cmath>

namespace shrink::kernel_variants::avx2 {

// exp(x) = 2^n exp(r) after the rounding n = round(x / ln2): r = x - n ln2 (ln2 in two parts, so
// the reduction is exact) and exp(r) by Cephes' degree-6 minimax polynomial, for any vector type
// F::V with F's fmadd, mul, add and set1 (shared by exp8 and the AVX-512 exponential in lanes16.h).
template <class F>
typename F::V exp_of_reduced(typename F::V x, typename F::V n) {
  typename F::V r = F::fmadd(n, F::set1(-0.693359375f), x);
  r = F::fmadd(n, F::set1(2.12194440e-4f), r);
  typename F::V p = F::set1(1.9875691500E-4f);
  p = F::fmadd(p, r, F::set1(1.3981999507E-3f));
  p = F::fmadd(p, r, F::set1(8.3334519073E-3f));
  p = F::fmadd(p, r, F::set1(4.1665795894E-2f));
  p = F::fmadd(p, r, F::set1(1.6666665459E-1f));
  p = F::fmadd(p, r, F::set1(5.0000001201E-1f));
  return F::fmadd(p, F::mul(r, r), F::add(r, F::set1(1.f)));
}

struct Ops8 {
  using V = __m256;
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V set1(float x) { return _mm256_set1_ps(x); }
};

inline __m256 exp8(__m256 x) {
  // Beyond +-88.7 expf overflows or underflows; clamp so that 2^n stays a normal float.
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 p = exp_of_reduced<Ops8>(x, n);
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
