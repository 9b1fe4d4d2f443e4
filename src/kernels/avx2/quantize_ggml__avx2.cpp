// f32 -> ggml Q8_0 / Q4_0 / Q4_1 blocks with AVX2, bit-exact with the scalar reference: the
// block statistics are exact (min/max), scales are computed by the same IEEE expressions, and
// rounding reproduces roundf (half away from zero) and the (int8_t) truncations. Blocks go eight
// at a time: each block's statistic is reduced to one vector, the eight vectors to one vector of
// eight statistics (a transpose-reduce), and the scales, their inverses and their f16 bits (F16C,
// round to nearest even like f32_to_f16) are computed for the eight at once; one block at a time
// the chain of horizontal reductions, scalar divisions and the software f16 conversion had been
// the cost (0.75-0.92 G values/s for Q4_1 on the Sapphire Rapids host). The last n/32 mod 8
// blocks go one at a time.
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

// Lane j of the result = op over the lanes of v[j] (op = min or max), by a transpose-reduce.
template <__m256 (*Op)(__m256, __m256)> __m256 reduce_eight(const __m256 (&v)[8]) {
  __m256 pairs[4];
  for (int p = 0; p < 4; ++p)  // [a0 b0 a1 b1 | a4 b4 a5 b5] op [a2 b2 a3 b3 | a6 b6 a7 b7]
    pairs[p] = Op(_mm256_unpacklo_ps(v[2 * p], v[2 * p + 1]), _mm256_unpackhi_ps(v[2 * p], v[2 * p + 1]));
  __m256 quads[2];
  for (int q = 0; q < 2; ++q)  // [a b c d (lanes 0-3) | a b c d (lanes 4-7)]
    quads[q] = Op(_mm256_shuffle_ps(pairs[2 * q], pairs[2 * q + 1], 0x44), _mm256_shuffle_ps(pairs[2 * q], pairs[2 * q + 1], 0xee));
  return Op(_mm256_permute2f128_ps(quads[0], quads[1], 0x20), _mm256_permute2f128_ps(quads[0], quads[1], 0x31));
}

inline __m256 min8(__m256 a, __m256 b) { return _mm256_min_ps(a, b); }
inline __m256 max8(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }

// 1 / d where d != 0, else 0 (the reference's id).
inline __m256 inverse_or_zero(__m256 d) {
  return _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.f), d), _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_UQ));
}

// The f16 bits of eight floats, rounded to nearest even.
inline void store_halves(__m256 v, uint16_t (&out)[8]) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// The lanes' largest magnitudes over one block (32 values).
inline __m256 block_amax(const float* x) {
  __m256 amax = _mm256_setzero_ps();
  for (int p = 0; p < 4; ++p) amax = _mm256_max_ps(amax, _mm256_and_ps(_mm256_loadu_ps(x + 8 * p), kAbsMask));
  return amax;
}

// Lane j = the largest magnitude in block j of the eight at x.
inline __m256 eight_blocks_amax(const float* x) {
  __m256 amax[8];
  for (int j = 0; j < 8; ++j) amax[j] = block_amax(x + 32 * j);
  return reduce_eight<max8>(amax);
}

}  // namespace

void quantize_q8_0__avx2(const float* x, void* blocks, int64_t n) {
  auto* out = static_cast<uint8_t*>(blocks);
  const auto write = [](const float* xb, uint8_t* ob, float id, uint16_t d_bits) {
    std::memcpy(ob, &d_bits, 2);
    __m256i q[4];
    for (int p = 0; p < 4; ++p)
      q[p] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(_mm256_loadu_ps(xb + 8 * p), _mm256_set1_ps(id))));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ob + 2), pack_32(q[0], q[1], q[2], q[3]));
  };
  const int64_t count = n / 32;
  int64_t b = 0;
  for (; b + 8 <= count; b += 8, x += 256, out += 8 * sizeof(BlockQ8_0)) {
    const __m256 d = _mm256_div_ps(eight_blocks_amax(x), _mm256_set1_ps(127.f));
    alignas(32) float ids[8];
    uint16_t bits[8];
    _mm256_store_ps(ids, inverse_or_zero(d));
    store_halves(d, bits);
    for (int j = 0; j < 8; ++j) write(x + 32 * j, out + j * sizeof(BlockQ8_0), ids[j], bits[j]);
  }
  for (; b < count; ++b, x += 32, out += sizeof(BlockQ8_0)) {
    const float d = horizontal_max(block_amax(x)) / 127.f, id = d != 0.f ? 1.f / d : 0.f;
    write(x, out, id, f32_to_f16(d));
  }
}

namespace {

// Q4_0's d = max / -8, max the first value of largest magnitude in the block, with its sign.
float q4_0_signed_max(const float* x, float amax) {
  if (!(amax > 0.f)) return 0.f;
  const __m256 target = _mm256_set1_ps(amax);
  uint32_t hits = 0;
  for (int p = 0; p < 4; ++p)
    hits |= uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8 * p), kAbsMask), target, _CMP_EQ_OQ)))
            << (8 * p);
  return x[__builtin_ctz(hits)];
}

}  // namespace

void quantize_q4_0__avx2(const float* x, void* blocks, int64_t n) {
  auto* out = static_cast<uint8_t*>(blocks);
  const auto write = [](const float* xb, uint8_t* ob, float id, uint16_t d_bits) {
    std::memcpy(ob, &d_bits, 2);
    store_nibbles(ob + 2, to_nibbles(xb, _mm256_set1_ps(id), _mm256_setzero_ps(), _mm256_set1_ps(8.5f)));
  };
  const int64_t count = n / 32;
  int64_t b = 0;
  for (; b + 8 <= count; b += 8, x += 256, out += 8 * sizeof(BlockQ4_0)) {
    alignas(32) float amaxes[8], maxes[8], ids[8];
    _mm256_store_ps(amaxes, eight_blocks_amax(x));
    for (int j = 0; j < 8; ++j) maxes[j] = q4_0_signed_max(x + 32 * j, amaxes[j]);
    const __m256 d = _mm256_div_ps(_mm256_load_ps(maxes), _mm256_set1_ps(-8.f));
    uint16_t bits[8];
    _mm256_store_ps(ids, inverse_or_zero(d));
    store_halves(d, bits);
    for (int j = 0; j < 8; ++j) write(x + 32 * j, out + j * sizeof(BlockQ4_0), ids[j], bits[j]);
  }
  for (; b < count; ++b, x += 32, out += sizeof(BlockQ4_0)) {
    const float d = q4_0_signed_max(x, horizontal_max(block_amax(x))) / -8.f, id = d != 0.f ? 1.f / d : 0.f;
    write(x, out, id, f32_to_f16(d));
  }
}

void quantize_q4_1__avx2(const float* x, void* blocks, int64_t n) {
  auto* out = static_cast<uint8_t*>(blocks);
  const auto write = [](const float* xb, uint8_t* ob, float id, float min, uint16_t d_bits, uint16_t m_bits) {
    std::memcpy(ob, &d_bits, 2);
    std::memcpy(ob + 2, &m_bits, 2);
    store_nibbles(ob + 4, to_nibbles(xb, _mm256_set1_ps(id), _mm256_set1_ps(min), _mm256_set1_ps(0.5f)));
  };
  const auto block_range = [](const float* xb, __m256& lo, __m256& hi) {
    lo = hi = _mm256_loadu_ps(xb);
    for (int p = 1; p < 4; ++p) {
      const __m256 v = _mm256_loadu_ps(xb + 8 * p);
      lo = _mm256_min_ps(lo, v);
      hi = _mm256_max_ps(hi, v);
    }
  };
  const int64_t count = n / 32;
  int64_t b = 0;
  for (; b + 8 <= count; b += 8, x += 256, out += 8 * sizeof(BlockQ4_1)) {
    __m256 lo[8], hi[8];
    for (int j = 0; j < 8; ++j) block_range(x + 32 * j, lo[j], hi[j]);
    const __m256 min = reduce_eight<min8>(lo), max = reduce_eight<max8>(hi);
    const __m256 d = _mm256_div_ps(_mm256_sub_ps(max, min), _mm256_set1_ps(15.f));
    alignas(32) float mins[8], ids[8];
    uint16_t d_bits[8], m_bits[8];
    _mm256_store_ps(mins, min);
    _mm256_store_ps(ids, inverse_or_zero(d));
    store_halves(d, d_bits);
    store_halves(min, m_bits);
    for (int j = 0; j < 8; ++j) write(x + 32 * j, out + j * sizeof(BlockQ4_1), ids[j], mins[j], d_bits[j], m_bits[j]);
  }
  for (; b < count; ++b, x += 32, out += sizeof(BlockQ4_1)) {
    __m256 lo, hi;
    block_range(x, lo, hi);
    const float min = horizontal_min(lo), max = horizontal_max(hi);
    const float d = (max - min) / 15.f, id = d != 0.f ? 1.f / d : 0.f;
    write(x, out, id, min, f32_to_f16(d), f32_to_f16(min));
  }
}

}  // namespace shrink::kernel_variants
