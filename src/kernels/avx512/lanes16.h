// 16 f32 lanes in an AVX-512 register, as the shared attention bodies (attend_f16kv_body.h,
// attend_prompt_body.h) use them. Include only from files compiled with the AVX-512 flags.
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/avx2/exp8.h"


namespace shrink::kernel_variants {

struct Lanes16 {
  using V = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kValueWidth = 4;
  static constexpr int kPromptRows = 8;  // query rows a prompt pass holds (32 registers)
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V broadcast(const float* x) { return _mm512_set1_ps(*x); }
  static V widen(const uint16_t* x) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x))); }
  static V load(const float* x) { return _mm512_loadu_ps(x); }
  static void store(float* x, V v) { _mm512_storeu_ps(x, v); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V scaled_sum(float s, V a, V b) { return _mm512_mul_ps(_mm512_set1_ps(s), _mm512_add_ps(a, b)); }
  static float reduce_max(V v) { return _mm512_reduce_max_ps(v); }
  static float reduce_sum(V v) { return _mm512_reduce_add_ps(v); }
  static V exp(V v) {
    // Cephes' expf as exp8 (exp8.h's exp_of_reduced), with vscalefps for the 2^n: no exponent
    // bits to assemble and no overflow clamp. Below -87.3 (where expf is at most
    // 1.2e-38) and at -inf the result is 0; NaN stays NaN (the maximum keeps its second operand).
    const __m512 x = _mm512_max_ps(_mm512_set1_ps(-87.3f), v);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 p = avx2::exp_of_reduced<Lanes16>(x, n);
    const __m512 y = _mm512_scalef_ps(p, n);
    const __mmask16 keep = _mm512_cmp_ps_mask(v, _mm512_set1_ps(-87.3f), _CMP_NLT_UQ);  // NaN kept too
    return _mm512_maskz_mov_ps(keep, y);  // (+inf is not a softmax argument here)
  }
  // v with lanes n and up set to -inf.
  static V below(V v, int64_t n) {
    const __mmask16 keep = n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
    return _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), keep, v);
  }
};

}  // namespace shrink::kernel_variants
