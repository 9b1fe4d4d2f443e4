// The int4 decode GEMV (one activation row) with AVX512-VNNI on 16-row blocks
// (pack_int4_row_blocks; the driver: avx2/int4_gemv_row_blocks.h): each 64-byte load holds 4
// nibble bytes of each of 16 rows, one row a lane, against the same 8 activations, broadcast;
// vpdpbusd sums them in place. A group's sums are converted and scaled once per 16 rows (the
// 4-row panel kernel, int4_gemv_vnni.h, did it per pair of rows and summed each row's 8 lanes at
// the end), and a group's scales and mins follow its nibbles in the same stream.
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

#include <cstdint>
#include <cstring>

#include "kernels/avx2/int4_gemv_row_blocks.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink::kernel_variants::vnni_gemv {
namespace {  // internal linkage: see int4_gemv_vnni.h

// The GF(2) matrix of vgf2p8affineqb that maps a byte to its high nibble shifted down: result bit
// i (i < 4) = source bit i + 4, the matrix's byte 7 - i selecting it; bits 4-7 = 0.
constexpr long long kHighNibbleDown = 0x1020408000000000LL;

// Rows 16 b[s] .. 16 b[s] + 15 for each stream s, groups of 8 LINES values. Each group's vpdpbusd
// sums run in two chains a stream, the low nibbles' and the high nibbles' (one thread, weights in
// L2: 1.7x as fast at 576 x 1536 g128 as chains of whole lines, line i into chain i % 2, and as fast
// at 1536 x 576 g64; four chains, two of each, were slower than either).
template <bool GFNI>
struct VnniKernel {
  static constexpr int64_t kRows = 16;

  template <int LINES, int STREAMS>
  static void run(const int64_t (&b)[STREAMS], const int8_t* a, float a_scale, const float* float_sums,
                  const Int4Weights& w, const float* bias, float* out) {
    const int64_t groups = w.k / w.group, block_bytes = int4_row_block_bytes(w.k, w.group, kRows);
    const __m512i low_mask = _mm512_set1_epi8(0x0f);
    const uint8_t* at[STREAMS];
    __m512 acc[STREAMS];
    for (int s = 0; s < STREAMS; ++s) {
      at[s] = w.row_blocks + b[s] * block_bytes;
      acc[s] = _mm512_setzero_ps();
    }
    for (int64_t g = 0; g < groups; ++g) {
      __m512i low_dots[STREAMS], high_dots[STREAMS];
      for (int s = 0; s < STREAMS; ++s) low_dots[s] = high_dots[s] = _mm512_setzero_si512();
      for (int i = 0; i < LINES; ++i) {
        const int64_t v = row_blocks::first_value(g, LINES, i);
        int32_t low4, high4;
        std::memcpy(&low4, a + v, 4);
        std::memcpy(&high4, a + v + 16, 4);
        const __m512i a_low = _mm512_set1_epi32(low4), a_high = _mm512_set1_epi32(high4);
        for (int s = 0; s < STREAMS; ++s) {
          _mm_prefetch(reinterpret_cast<const char*>(at[s] + 64 * i + row_blocks::kPrefetch), _MM_HINT_T0);
          __m512i packed = _mm512_loadu_si512(at[s] + 64 * i);
          asm("" : "+v"(packed));  // one load for both uses (see int4_gemv_vnni.h)
          const __m512i low = _mm512_and_si512(packed, low_mask);
          __m512i high;
          if constexpr (GFNI)
            high = _mm512_gf2p8affine_epi64_epi8(packed, _mm512_set1_epi64(kHighNibbleDown), 0);
          else
            high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low_mask);
          low_dots[s] = _mm512_dpbusd_epi32(low_dots[s], low, a_low);
          high_dots[s] = _mm512_dpbusd_epi32(high_dots[s], high, a_high);
        }
      }
      // The group's 16 scales and 16 mins, and the mins' term min * sum(a) (see int4_gemm.h).
      const __m512 sum = _mm512_set1_ps(float_sums[g]);
      for (int s = 0; s < STREAMS; ++s) {
        const uint8_t* scales = at[s] + 64 * LINES;
        _mm_prefetch(reinterpret_cast<const char*>(scales + row_blocks::kPrefetch), _MM_HINT_T0);
        const __m512i d = _mm512_add_epi32(low_dots[s], high_dots[s]);
        const __m512 scale = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales)));
        const __m512 mins = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + 32)));
        acc[s] = _mm512_fmadd_ps(mins, sum, _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), scale, acc[s]));
        at[s] += 64 * (LINES + 1);
      }
    }
    const __m512 a_scale_v = _mm512_set1_ps(a_scale);
    for (int s = 0; s < STREAMS; ++s) {
      const int64_t row = kRows * b[s];
      const __m512 bias_v = bias ? _mm512_loadu_ps(bias + row) : _mm512_setzero_ps();
      _mm512_storeu_ps(out + row, _mm512_fmadd_ps(acc[s], a_scale_v, bias_v));
    }
  }
};

// gemm_q4s8 for one row from w's 16-row blocks; false when it has none.
template <bool GFNI>
bool gemv_row_blocks(const int8_t* q, float a_scale, const int32_t* group_sums, const Int4Weights& w,
                     const float* bias, float* out) {
  return row_blocks::gemv<VnniKernel<GFNI>>(q, a_scale, group_sums, w, bias, out);
}

}  // namespace
}  // namespace shrink::kernel_variants::vnni_gemv
