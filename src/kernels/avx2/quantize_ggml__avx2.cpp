// f32 -> ggml Q8_0 / Q4_0 / Q4_1 blocks with AVX2, bit-exact with the scalar reference: the
// block statistics are exact (min/max), scales are computed by the same scalar expressions, and
// rounding reproduces roundf (half away from zero) and the (int8_t) truncations.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "kernels/avx2/horizontal.h"
#include "kernels/kernel_variants.h"
#include "shrink/core/half.h"
#include "shrink/kernels/ggml_formats.h"

namespace shrink::kernel_variants {
namespace {

using namespace avx2;

const __m256 kAbsMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));

// roundf: half away from zero, exactly (the fraction v - trunc(v) is computed without error).
__m256 round_half_away(__m256 v) {
  const __m256 truncated = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 fraction = _mm256_and_ps(_mm256_sub_ps(v, truncated), kAbsMask);
  const __m256 away = _mm256_and_ps(_mm256_cmp_ps(fraction, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                                    _mm256_or_ps(_mm256_set1_ps(1.f), _mm256_andnot_ps(kAbsMask, v)));
  return _mm256_add_ps(truncated, away);
}

// 4 x 8 int32 (each 0..15, or -127..127) -> 32 bytes in order.
__m256i pack_32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
  const __m256i bytes = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// values 0..15 in 32 bytes -> 16 bytes: low nibbles from bytes 0-15, high from 16-31.
void store_nibbles(uint8_t* out, __m256i q) {
  const __m128i low = _mm256_castsi256_si128(q), high = _mm256_extracti128_si256(q, 1);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_or_si128(low, _mm_slli_epi16(high, 4)));
}

__m256i to_nibbles(const float* x, __m256 scale, __m256 offset, __m256 bias) {
  __m256i parts[4];
  const __m256 fifteen = _mm256_set1_ps(15.f);
  for (int p = 0; p < 4; ++p) {
    const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + 8 * p), offset), scale), bias);
    parts[p] = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC), fifteen));
  }
  return pack_32(parts[0], parts[1], parts[2], parts[3]);
}

}  // namespace

void quantize_q8_0__avx2(const float* x, void* blocks, int64_t n) {
  auto* out = static_cast<uint8_t*>(blocks);
  for (int64_t b = 0; b < n / 32; ++b, x += 32, out += sizeof(BlockQ8_0)) {
    __m256 v[4], amax = _mm256_setzero_ps();
    for (int p = 0; p < 4; ++p) {
      v[p] = _mm256_loadu_ps(x + 8 * p);
      amax = _mm256_max_ps(amax, _mm256_and_ps(v[p], kAbsMask));
    }
    const float d = horizontal_max(amax) / 127.f, id = d != 0.f ? 1.f / d : 0.f;
    const uint16_t d_bits = f32_to_f16(d);
    std::memcpy(out, &d_bits, 2);
    __m256i q[4];
    for (int p = 0; p < 4; ++p) q[p] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[p], _mm256_set1_ps(id))));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2), pack_32(q[0], q[1], q[2], q[3]));
  }
}

void quantize_q4_0__avx2(const float* x, void* blocks, int64_t n) {
  auto* out = static_cast<uint8_t*>(blocks);
  for (int64_t b = 0; b < n / 32; ++b, x += 32, out += sizeof(BlockQ4_0)) {
    __m256 magnitude[4], amax_v = _mm256_setzero_ps();
    for (int p = 0; p < 4; ++p) {
      magnitude[p] = _mm256_and_ps(_mm256_loadu_ps(x + 8 * p), kAbsMask);
      amax_v = _mm256_max_ps(amax_v, magnitude[p]);
    }
    const float amax = horizontal_max(amax_v);
    float max = 0.f;  // the first value of largest magnitude, with its sign
    if (amax > 0.f) {
      const __m256 target = _mm256_set1_ps(amax);
      uint32_t hits = 0;
      for (int p = 0; p < 4; ++p)
        hits |= uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(magnitude[p], target, _CMP_EQ_OQ))) << (8 * p);
      max = x[__builtin_ctz(hits)];
    }
    const float d = max / -8.f, id = d != 0.f ? 1.f / d : 0.f;
    const uint16_t d_bits = f32_to_f16(d);
    std::memcpy(out, &d_bits, 2);
    store_nibbles(out + 2, to_nibbles(x, _mm256_set1_ps(id), _mm256_setzero_ps(), _mm256_set1_ps(8.5f)));
  }
}

void quantize_q4_1__avx2(const float* x, void* blocks, int64_t n) {
  auto* out = static_cast<uint8_t*>(blocks);
  for (int64_t b = 0; b < n / 32; ++b, x += 32, out += sizeof(BlockQ4_1)) {
    __m256 lo = _mm256_loadu_ps(x), hi = lo;
    for (int p = 1; p < 4; ++p) {
      const __m256 v = _mm256_loadu_ps(x + 8 * p);
      lo = _mm256_min_ps(lo, v);
      hi = _mm256_max_ps(hi, v);
    }
    const float min = horizontal_min(lo), max = horizontal_max(hi);
    const float d = (max - min) / 15.f, id = d != 0.f ? 1.f / d : 0.f;
    const uint16_t d_bits = f32_to_f16(d), m_bits = f32_to_f16(min);
    std::memcpy(out, &d_bits, 2);
    std::memcpy(out + 2, &m_bits, 2);
    store_nibbles(out + 4, to_nibbles(x, _mm256_set1_ps(id), _mm256_set1_ps(min), _mm256_set1_ps(0.5f)));
  }
}

}  // namespace shrink::kernel_variants
