// 8 f32 lanes in an AVX2 register, as the shared attention bodies (attend_f16kv_body.h,
// attend_prompt_body.h) use them. Include only from files compiled with the AVX2 flags.
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/avx2/exp8.h"
#include "kernels/avx2/horizontal.h"

namespace shrink::kernel_variants {

struct Lanes8 {
  using V = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kValueWidth = 4;  // 32 dimensions a pass (with 3 queries one accumulator spills; 16 was no faster)
  static constexpr int kPromptRows = 4;  // query rows a prompt pass holds (16 registers)
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V broadcast(const float* x) { return _mm256_broadcast_ss(x); }
  static V widen(const uint16_t* x) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x))); }
  static V load(const float* x) { return _mm256_loadu_ps(x); }
  static void store(float* x, V v) { _mm256_storeu_ps(x, v); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V scaled_sum(float s, V a, V b) { return _mm256_mul_ps(_mm256_set1_ps(s), _mm256_add_ps(a, b)); }
  static float reduce_max(V v) { return avx2::horizontal_max(v); }
  static float reduce_sum(V v) { return avx2::horizontal_sum(v); }
  static V exp(V v) { return avx2::keep_nan<avx2::exp_saturating8>(v); }
  // v with lanes n and up set to -inf.
  static V below(V v, int64_t n) {
    const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), v, _mm256_cmp_ps(lane, _mm256_set1_ps(float(n)), _CMP_LT_OQ));
  }
};

}  // namespace shrink::kernel_variants
