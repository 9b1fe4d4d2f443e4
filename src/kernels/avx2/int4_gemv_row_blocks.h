// The int4 decode GEMV (one activation row) on row blocks (pack_int4_row_blocks): the driver
// shared by the AVX2 kernel here (8 rows a block) and the AVX512-VNNI one
// (vnni/int4_gemv_row_blocks.h, 16 rows), and the AVX2 kernel. A load holds 4 nibble bytes of
// each of the block's rows, one row a lane, against the same 8 activations, broadcast (the s8 row
// as it is, not reordered); a group's sums are converted and scaled once for the whole block,
// and a group's scales and mins follow its nibbles in the same stream.
//
// The AVX2 kernel, measured on the Zen 5 host with SHRINK_ISA=avx2 (weights in L2, against the
// 4-row panel kernel): one thread 1.5-2.0x as fast at SmolLM2's shapes (1536 x 576 g64: 7.7 against
// 15.3 us), two threads 1.4-2.0x, 4096^2 g128 1.4-1.5x.
//
// Internal linkage: files compiled with different flags include this (see vnni/int4_gemv_vnni.h).
// Include only from files compiled with at least the AVX2 flags.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/line_buffer.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink::kernel_variants::row_blocks {
namespace {

// Bytes ahead of each load that a block's stream is prefetched (the hardware's prefetchers alone
// left the VNNI kernel's DRAM case at 0.95-1.04x the panel kernel; 2 and 4 KB ahead measured alike).
constexpr int64_t kPrefetch = 2048;

// The first of the 4 activations that line i of group g meets with its low nibbles (the high ones
// meet the 4 at + 16): the line holds bytes 4 w .. 4 w + 3 of each row, w = g * lines + i, and a
// row's 16 bytes of a 32-value block hold values j (low nibble) and j + 16 (high).
constexpr int64_t first_value(int64_t g, int64_t lines, int64_t i) {
  const int64_t word = g * lines + i;
  return 32 * (word / 4) + 4 * (word % 4);
}

// Blocks [first, last) of one thread's share, in two streams (the share's first and second halves
// side by side: one core keeps more lines in flight over two streams than over one).
// Kernel::run<LINES, STREAMS>(blocks, a, a_scale, float_sums, w, bias, out) multiplies
// STREAMS blocks with groups of 8 LINES values.
template <class Kernel, int LINES>
void share(int64_t first, int64_t last, const int8_t* a, float a_scale, const float* float_sums, const Int4Weights& w,
           const float* bias, float* out) {
  const int64_t half = (last - first) / 2;
  for (int64_t i = 0; i < half; ++i)
    Kernel::template run<LINES, 2>({first + i, first + half + i}, a, a_scale, float_sums, w, bias, out);
  if ((last - first) % 2) Kernel::template run<LINES, 1>({last - 1}, a, a_scale, float_sums, w, bias, out);
}

using Share = void (*)(int64_t first, int64_t last, const int8_t* a, float a_scale, const float* float_sums,
                       const Int4Weights& w, const float* bias, float* out);

// out = a_scale * (w's products with q) + bias for one row q, from w's row blocks of
// Kernel::kRows rows; false when w has none of that size.
template <class Kernel>
bool gemv(const int8_t* q, float a_scale, const int32_t* group_sums, const Int4Weights& w, const float* bias,
          float* out) {
  if (!w.row_blocks || w.block_rows != Kernel::kRows || !int4_row_blocks_fit(w, Kernel::kRows)) return false;
  Share run = nullptr;
  switch (w.group) {
    case 32: run = share<Kernel, 4>; break;
    case 64: run = share<Kernel, 8>; break;
    case 128: run = share<Kernel, 16>; break;
    default: run = share<Kernel, 32>; break;  // 256 (int4_row_blocks_fit)
  }
  thread_local LineBuffer<float> float_sums_buffer;  // the caller's, read by the workers below
  float* const float_sums = float_sums_buffer.get(size_t(w.k / w.group));
  for (int64_t g = 0; g < w.k / w.group; ++g) float_sums[g] = float(group_sums[g]);
  static ThreadSpeeds speeds;
  parallel_for_balanced(0, w.n / Kernel::kRows, 1, speeds, [&](int64_t first, int64_t last) {
    run(first, last, q, a_scale, float_sums, w, bias, out);
  });
  return true;
}

// The AVX2 kernel: 8 rows a block, a 32-byte line each 8 values of the 8 rows. vpmaddubsw gives
// s16 sums of two products, the low and high nibbles' added (|4 * 15 * 127| = 7620), two lines
// summed in s16 before vpmaddwd widens them (15240 < 32767).
struct Avx2Kernel {
  static constexpr int64_t kRows = 8;

  template <int LINES, int STREAMS>
  static void run(const int64_t (&b)[STREAMS], const int8_t* a, float a_scale, const float* float_sums,
                  const Int4Weights& w, const float* bias, float* out) {
    static_assert(LINES % 2 == 0);
    const int64_t groups = w.k / w.group, block_bytes = int4_row_block_bytes(w.k, w.group, kRows);
    const __m256i low_mask = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    const uint8_t* at[STREAMS];
    __m256 acc[STREAMS];
    for (int s = 0; s < STREAMS; ++s) {
      at[s] = w.row_blocks + b[s] * block_bytes;
      acc[s] = _mm256_setzero_ps();
    }
    for (int64_t g = 0; g < groups; ++g) {
      __m256i dots[STREAMS];
      for (int s = 0; s < STREAMS; ++s) dots[s] = _mm256_setzero_si256();
      for (int i0 = 0; i0 < LINES; i0 += 2) {
        __m256i pairs[STREAMS];
        for (int s = 0; s < STREAMS; ++s) pairs[s] = _mm256_setzero_si256();
        for (int i = i0; i < i0 + 2; ++i) {
          const int64_t v = first_value(g, LINES, i);
          int32_t low4, high4;
          std::memcpy(&low4, a + v, 4);
          std::memcpy(&high4, a + v + 16, 4);
          const __m256i a_low = _mm256_set1_epi32(low4), a_high = _mm256_set1_epi32(high4);
          for (int s = 0; s < STREAMS; ++s) {
            if (i % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(at[s] + 32 * i + kPrefetch), _MM_HINT_T0);
            __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at[s] + 32 * i));
            asm("" : "+x"(packed));  // one load for both uses (see vnni/int4_gemv_vnni.h)
            const __m256i low = _mm256_and_si256(packed, low_mask);
            const __m256i high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask);
            pairs[s] = _mm256_add_epi16(
                pairs[s], _mm256_add_epi16(_mm256_maddubs_epi16(low, a_low), _mm256_maddubs_epi16(high, a_high)));
          }
        }
        for (int s = 0; s < STREAMS; ++s) dots[s] = _mm256_add_epi32(dots[s], _mm256_madd_epi16(pairs[s], ones));
      }
      // The group's 8 scales and 8 mins, and the mins' term min * sum(a) (see int4_gemm.h).
      const __m256 sum = _mm256_set1_ps(float_sums[g]);
      for (int s = 0; s < STREAMS; ++s) {
        const uint8_t* scales = at[s] + 32 * LINES;
        _mm_prefetch(reinterpret_cast<const char*>(scales + kPrefetch), _MM_HINT_T0);
        const __m256 scale = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales)));
        const __m256 mins = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 16)));
        acc[s] = _mm256_fmadd_ps(mins, sum, _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots[s]), scale, acc[s]));
        at[s] += 32 * (LINES + 1);
      }
    }
    const __m256 a_scale_v = _mm256_set1_ps(a_scale);
    for (int s = 0; s < STREAMS; ++s) {
      const int64_t row = kRows * b[s];
      const __m256 bias_v = bias ? _mm256_loadu_ps(bias + row) : _mm256_setzero_ps();
      _mm256_storeu_ps(out + row, _mm256_fmadd_ps(acc[s], a_scale_v, bias_v));
    }
  }
};

}  // namespace
}  // namespace shrink::kernel_variants::row_blocks
