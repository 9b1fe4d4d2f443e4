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
// Include only from files compiled with the VNNI flags.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/avx2/int4_gemv_row_blocks.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink::kernel_variants::vnni_gemv {
namespace {  // internal linkage: see int4_gemv_vnni.h

// A byte's two nibbles for vpdpbusd, neither of them moved: the low one as byte & 0x0f, the high
// one in place as byte & 0xf0, 16 x the nibble and still a u8. The sums of the high nibbles'
// products are then 16 x theirs, exact multiples of 16 far from overflow (a group of 256 values:
// |sum| <= 128 x 240 x 128 < 2^22 in a lane), brought down by one arithmetic shift a group
// instead of a shift or a vgf2p8affineqb every 64 bytes. Zen 4 runs two 512-bit vector
// operations a cycle, and with the weights in cache the kernel ran at about that limit; per
// 64-byte line it had ~6 (two vpdpbusd, two masks or a mask and the affine move, a share of a
// broadcast and of the group's epilogue), now ~5. One thread, weights in L2, on the Zen 4 host:
// 2.35 -> 2.01-2.04 TSC cycles a line at 1536 x 576 g64 (1.13-1.16x), 576 x 1536 g128 1.11-1.14x,
// 1536 x 576 g32 1.03x; the same products, bit for bit.
inline __m512i high_sums_down(__m512i sums) { return _mm512_srai_epi32(sums, 4); }

// Rows 16 b[s] .. 16 b[s] + 15 for each stream s, groups of 8 LINES values. Each group's vpdpbusd
// sums run in two chains a stream, the low nibbles' and the high nibbles' (one thread, weights in
// L2: 1.7x as fast at 576 x 1536 g128 as chains of whole lines, line i into chain i % 2, and as fast
// at 1536 x 576 g64; four chains, two of each, were slower than either).
// The nibbles as high_sums_down describes.
struct VnniKernel {
  static constexpr int64_t kRows = 16;

  template <int LINES, int STREAMS>
  static void run(const int64_t (&b)[STREAMS], const int8_t* a, float a_scale, const float* float_sums,
                  const Int4Weights& w, const float* bias, float* out) {
    const int64_t groups = w.k / w.group, block_bytes = int4_row_block_bytes(w.k, w.group, kRows);
    const __m512i low_mask = _mm512_set1_epi8(0x0f), high_mask = _mm512_set1_epi8(char(0xf0));
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
          const __m512i low = _mm512_and_si512(packed, low_mask), high = _mm512_and_si512(packed, high_mask);  // x 16
          low_dots[s] = _mm512_dpbusd_epi32(low_dots[s], low, a_low);
          high_dots[s] = _mm512_dpbusd_epi32(high_dots[s], high, a_high);
        }
      }
      // The group's 16 scales and 16 mins, and the mins' term min * sum(a) (see int4_gemm.h).
      const __m512 sum = _mm512_set1_ps(float_sums[g]);
      for (int s = 0; s < STREAMS; ++s) {
        const uint8_t* scales = at[s] + 64 * LINES;
        _mm_prefetch(reinterpret_cast<const char*>(scales + row_blocks::kPrefetch), _MM_HINT_T0);
        const __m512i d = _mm512_add_epi32(low_dots[s], high_sums_down(high_dots[s]));
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
bool gemv_row_blocks(const int8_t* q, float a_scale, const int32_t* group_sums, const Int4Weights& w, const float* bias,
                     float* out) {
  return row_blocks::gemv<VnniKernel>(q, a_scale, group_sums, w, bias, out);
}

}  // namespace
}  // namespace shrink::kernel_variants::vnni_gemv
