// The int4 decode GEMV (one activation row) with AVX512-VNNI on 16-row blocks
// (pack_int4_row_blocks): each 64-byte load holds 4 nibble bytes of each of 16 rows, one row a
// lane, against the same 8 activations, broadcast; vpdpbusd sums them in place. A group's sums are
// converted and scaled once per 16 rows (the 4-row panel kernel, int4_gemv_vnni.h, did it per pair
// of rows and summed each row's 8 lanes at the end), and a group's scales and mins follow its
// nibbles in the same stream.
//
// Measured on the 2-core Zen 5 host (AVX-512, VNNI, GFNI), SmolLM2-135M's products of one token
// (30 layers of q/k/v, o, gate/up and down, 59 MB): with the weights in the last-level cache on
// one thread 1.55-1.70x the panel kernel's speed (101 against 65 GB/s at groups of 64 and 128,
// 1.7x at 32); from DRAM on two threads 1.23-1.39x when the memory delivered more than the panel
// kernel could take (65-69 against 50-54 GB/s), 1.02-1.07x when it did not.
//
// GFNI = true takes each byte's high nibble down with one vgf2p8affineqb (see int4_gemv_vnni.h).
// Include only from files compiled with the VNNI flags (and -mgfni for GFNI = true).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/line_buffer.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink::kernel_variants::vnni_gemv {
namespace {  // internal linkage: see int4_gemv_vnni.h

// The GF(2) matrix of vgf2p8affineqb that maps a byte to its high nibble shifted down: result bit
// i (i < 4) = source bit i + 4, the matrix's byte 7 - i selecting it; bits 4-7 = 0.
constexpr long long kHighNibbleDown = 0x1020408000000000LL;

// Bytes ahead of each load that the stream is prefetched (the hardware's prefetchers alone left
// the DRAM case at 0.95-1.04x the panel kernel; 2 and 4 KB ahead measured alike).
constexpr int64_t kRowBlockPrefetch = 2048;

// Rows 16 b[s] .. 16 b[s] + 15 for each stream s (far apart in memory: two streams keep more
// lines in flight than one), groups of 8 LINES values. Each group's vpdpbusd sums run in two
// chains a stream, the low nibbles' and the high nibbles' (one thread, weights in L2: 1.7x as fast
// at 576 x 1536 g128 as chains of whole lines, line i into chain i % 2, and as fast at 1536 x 576
// g64; four chains, two of each, were slower than either).
template <int LINES, int STREAMS, bool GFNI>
void row_blocks_vnni(const int64_t (&b)[STREAMS], const int8_t* a, float a_scale, const float* float_sums,
                     const Int4Weights& w, const float* bias, float* out) {
  constexpr int kChains = 2;  // low, high
  const int64_t groups = w.k / w.group, block_bytes = int4_row_block_bytes(w.k, w.group);
  const __m512i low_mask = _mm512_set1_epi8(0x0f);
  const uint8_t* at[STREAMS];
  __m512 acc[STREAMS];
  for (int s = 0; s < STREAMS; ++s) {
    at[s] = w.row_blocks + b[s] * block_bytes;
    acc[s] = _mm512_setzero_ps();
  }
  for (int64_t g = 0; g < groups; ++g) {
    __m512i dots[STREAMS][kChains];
    for (int s = 0; s < STREAMS; ++s)
      for (int c = 0; c < kChains; ++c) dots[s][c] = _mm512_setzero_si512();
    for (int i = 0; i < LINES; ++i) {
      // Line i holds bytes 4 (g LINES + i) .. + 3 of each row: values v .. v + 3 of a 32-value
      // block in the low nibbles and v + 16 .. v + 19 in the high ones.
      const int64_t word = g * LINES + i, v = 32 * (word / 4) + 4 * (word % 4);
      int32_t low4, high4;
      std::memcpy(&low4, a + v, 4);
      std::memcpy(&high4, a + v + 16, 4);
      const __m512i a_low = _mm512_set1_epi32(low4), a_high = _mm512_set1_epi32(high4);
      for (int s = 0; s < STREAMS; ++s) {
        _mm_prefetch(reinterpret_cast<const char*>(at[s] + 64 * i + kRowBlockPrefetch), _MM_HINT_T0);
        __m512i packed = _mm512_loadu_si512(at[s] + 64 * i);
        asm("" : "+v"(packed));  // one load for both uses (see int4_gemv_vnni.h)
        const __m512i low = _mm512_and_si512(packed, low_mask);
        __m512i high;
        if constexpr (GFNI)
          high = _mm512_gf2p8affine_epi64_epi8(packed, _mm512_set1_epi64(kHighNibbleDown), 0);
        else
          high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low_mask);
        dots[s][0] = _mm512_dpbusd_epi32(dots[s][0], low, a_low);
        dots[s][1] = _mm512_dpbusd_epi32(dots[s][1], high, a_high);
      }
    }
    // The group's 16 scales and 16 mins, and the mins' term min * sum(a) (see int4_gemm.h).
    const __m512 sum = _mm512_set1_ps(float_sums[g]);
    for (int s = 0; s < STREAMS; ++s) {
      const uint8_t* scales = at[s] + 64 * LINES;
      _mm_prefetch(reinterpret_cast<const char*>(scales + kRowBlockPrefetch), _MM_HINT_T0);
      __m512i d = dots[s][0];
      for (int c = 1; c < kChains; ++c) d = _mm512_add_epi32(d, dots[s][c]);
      const __m512 scale = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales)));
      const __m512 mins = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + 32)));
      acc[s] = _mm512_fmadd_ps(mins, sum, _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), scale, acc[s]));
      at[s] += 64 * (LINES + 1);
    }
  }
  const __m512 a_scale_v = _mm512_set1_ps(a_scale);
  for (int s = 0; s < STREAMS; ++s) {
    const int64_t row = 16 * b[s];
    const __m512 bias_v = bias ? _mm512_loadu_ps(bias + row) : _mm512_setzero_ps();
    _mm512_storeu_ps(out + row, _mm512_fmadd_ps(acc[s], a_scale_v, bias_v));
  }
}

// Blocks [first, last): in two streams, the share's first and second halves side by side.
template <int LINES, bool GFNI>
void row_block_share(int64_t first, int64_t last, const int8_t* a, float a_scale, const float* float_sums,
                     const Int4Weights& w, const float* bias, float* out) {
  const int64_t half = (last - first) / 2;
  for (int64_t i = 0; i < half; ++i)
    row_blocks_vnni<LINES, 2, GFNI>({first + i, first + half + i}, a, a_scale, float_sums, w, bias, out);
  if ((last - first) % 2) row_blocks_vnni<LINES, 1, GFNI>({last - 1}, a, a_scale, float_sums, w, bias, out);
}

using RowBlockShare = void (*)(int64_t first, int64_t last, const int8_t* a, float a_scale, const float* float_sums,
                               const Int4Weights& w, const float* bias, float* out);

template <bool GFNI>
RowBlockShare row_block_share_for(int64_t group) {
  switch (group) {
    case 32: return row_block_share<4, GFNI>;
    case 64: return row_block_share<8, GFNI>;
    case 128: return row_block_share<16, GFNI>;
    case 256: return row_block_share<32, GFNI>;
    default: return nullptr;
  }
}

// out = a_scale * (w's products with q) + bias for one row q, from w.row_blocks; false when w has
// none (or they do not fit: int4_row_blocks_fit).
template <bool GFNI>
bool gemv_row_blocks(const int8_t* q, float a_scale, const int32_t* group_sums, const Int4Weights& w,
                     const float* bias, float* out) {
  if (!w.row_blocks || !int4_row_blocks_fit(w)) return false;
  const RowBlockShare share = row_block_share_for<GFNI>(w.group);
  thread_local LineBuffer<float> float_sums_buffer;  // the caller's, read by the workers below
  float* const float_sums = float_sums_buffer.get(size_t(w.k / w.group));
  for (int64_t g = 0; g < w.k / w.group; ++g) float_sums[g] = float(group_sums[g]);
  static ThreadSpeeds speeds;
  parallel_for_balanced(0, w.n / 16, 1, speeds, [&](int64_t first, int64_t last) {
    share(first, last, q, a_scale, float_sums, w, bias, out);
  });
  return true;
}

}  // namespace
}  // namespace shrink::kernel_variants::vnni_gemv
