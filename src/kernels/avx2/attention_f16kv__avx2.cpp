// attend_f16kv (registry.h) with AVX2 and F16C: the shared body (attend_f16kv_body.h) with 8-lane
// vectors, two per 16-position key block. Head widths not a multiple of 8 use the reference.
#include "kernels/avx2/attend_f16kv_body.h"
#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {
namespace {

struct Lanes8 {
  using V = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kValueWidth = 4;  // 32 dimensions a pass (with 3 queries one accumulator spills; 16 was no faster)
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V broadcast(const float* x) { return _mm256_broadcast_ss(x); }
  static V widen(const uint16_t* x) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x))); }
  static V load(const float* x) { return _mm256_loadu_ps(x); }
  static void store(float* x, V v) { _mm256_storeu_ps(x, v); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V scaled_sum(float s, V a, V b) { return _mm256_mul_ps(_mm256_set1_ps(s), _mm256_add_ps(a, b)); }
};

}  // namespace

void attend_f16kv__avx2(int64_t queries, const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v,
                        int64_t v_stride, int64_t length, int64_t dim, float scale, float* y, int64_t y_stride,
                        float* scratch, float* lse) {
  if (dim % Lanes8::kLanes || length == 0)
    return attend_f16kv__ref(queries, q, q_stride, k, v, v_stride, length, dim, scale, y, y_stride, scratch, lse);
  f16kv::attend<Lanes8>(queries, q, q_stride, k, v, v_stride, length, dim, scale, y, y_stride, lse);
}

}  // namespace shrink::kernel_variants
