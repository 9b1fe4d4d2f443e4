// The ROWS x 16 u8 x s8 tile loop shared by the int8 GEMM and the int4 prefill:
//   acc[r][half] (8 s32 lanes: channels 8 half .. 8 half + 7) += sum over `groups` groups of 4
//   bytes of row r of `a` (rows lda bytes apart) times the panel `b` (per group 64 bytes: 16
//   channels x 4).
// ACTIVATIONS_UNSIGNED: a is u8 and b s8 (the int8 path); otherwise b holds u4/u8 weights and a s8
// activations (the int4 prefill). vpmaddubsw's pair sums stay within int16 for either.
// The full 6-row tile has its registers assigned by hand: written with intrinsics, GCC keeps only 3
// of the 12 accumulators in registers (it hoists the 12 vpmaddubsw and spills), which cost ~25% of
// the tile's speed. Include only from files compiled with the AVX2 flags.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace shrink::kernel_variants::avx2 {

template <int ROWS, bool ACTIVATIONS_UNSIGNED>
inline void accumulate_x16_intrinsics(const uint8_t* a, int64_t lda, const uint8_t* b, int64_t groups,
                                      __m256i (&acc)[ROWS][2]) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t g = 0; g < groups; ++g, b += 64) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
    for (int r = 0; r < ROWS; ++r) {
      int32_t four;
      std::memcpy(&four, a + r * lda + g * 4, 4);
      const __m256i x = _mm256_set1_epi32(four);
      const __m256i p0 = ACTIVATIONS_UNSIGNED ? _mm256_maddubs_epi16(x, b0) : _mm256_maddubs_epi16(b0, x);
      const __m256i p1 = ACTIVATIONS_UNSIGNED ? _mm256_maddubs_epi16(x, b1) : _mm256_maddubs_epi16(b1, x);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(p0, ones));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(p1, ones));
    }
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
// Registers: ymm4-15 accumulate, ymm0/1 the panel's two weight vectors, ymm2 the broadcast
// activations, ymm3 the product; the ones for vpmaddwd come from memory. groups > 0.
#define SHRINK_TILE_ROW(MADD, A, ACC0, ACC1)           \
  "vpbroadcastd " A ", %%ymm2\n\t"                     \
  MADD("%%ymm0")                                        \
  "vpmaddwd %[ones], %%ymm3, %%ymm3\n\t"               \
  "vpaddd %%ymm3, %%" ACC0 ", %%" ACC0 "\n\t"          \
  MADD("%%ymm1")                                        \
  "vpmaddwd %[ones], %%ymm3, %%ymm3\n\t"               \
  "vpaddd %%ymm3, %%" ACC1 ", %%" ACC1 "\n\t"
// AT&T order: vpmaddubsw signed, unsigned, destination.
#define SHRINK_MADD_U8_ACTIVATIONS(B) "vpmaddubsw " B ", %%ymm2, %%ymm3\n\t"
#define SHRINK_MADD_U8_WEIGHTS(B) "vpmaddubsw %%ymm2, " B ", %%ymm3\n\t"
#define SHRINK_TILE_LOOP(MADD)                                             \
  "vmovdqa 0(%[acc]), %%ymm4\n\t vmovdqa 32(%[acc]), %%ymm5\n\t"          \
  "vmovdqa 64(%[acc]), %%ymm6\n\t vmovdqa 96(%[acc]), %%ymm7\n\t"         \
  "vmovdqa 128(%[acc]), %%ymm8\n\t vmovdqa 160(%[acc]), %%ymm9\n\t"       \
  "vmovdqa 192(%[acc]), %%ymm10\n\t vmovdqa 224(%[acc]), %%ymm11\n\t"     \
  "vmovdqa 256(%[acc]), %%ymm12\n\t vmovdqa 288(%[acc]), %%ymm13\n\t"     \
  "vmovdqa 320(%[acc]), %%ymm14\n\t vmovdqa 352(%[acc]), %%ymm15\n\t"     \
  "1:\n\t" /* two groups per pass measured 1-2% slower on Zen 3 */         \
  "vmovdqu (%[b]), %%ymm0\n\t"                                             \
  "vmovdqu 32(%[b]), %%ymm1\n\t"                                           \
  SHRINK_TILE_ROW(MADD, "(%[a])", "ymm4", "ymm5")                           \
  SHRINK_TILE_ROW(MADD, "(%[a],%[lda])", "ymm6", "ymm7")                    \
  SHRINK_TILE_ROW(MADD, "(%[a],%[lda],2)", "ymm8", "ymm9")                  \
  SHRINK_TILE_ROW(MADD, "(%[a3])", "ymm10", "ymm11")                        \
  SHRINK_TILE_ROW(MADD, "(%[a3],%[lda])", "ymm12", "ymm13")                 \
  SHRINK_TILE_ROW(MADD, "(%[a3],%[lda],2)", "ymm14", "ymm15")               \
  "add $64, %[b]\n\t"                                                      \
  "add $4, %[a]\n\t"                                                       \
  "add $4, %[a3]\n\t"                                                      \
  "dec %[groups]\n\t"                                                      \
  "jnz 1b\n\t"                                                             \
  "vmovdqa %%ymm4, 0(%[acc])\n\t vmovdqa %%ymm5, 32(%[acc])\n\t"          \
  "vmovdqa %%ymm6, 64(%[acc])\n\t vmovdqa %%ymm7, 96(%[acc])\n\t"         \
  "vmovdqa %%ymm8, 128(%[acc])\n\t vmovdqa %%ymm9, 160(%[acc])\n\t"       \
  "vmovdqa %%ymm10, 192(%[acc])\n\t vmovdqa %%ymm11, 224(%[acc])\n\t"     \
  "vmovdqa %%ymm12, 256(%[acc])\n\t vmovdqa %%ymm13, 288(%[acc])\n\t"     \
  "vmovdqa %%ymm14, 320(%[acc])\n\t vmovdqa %%ymm15, 352(%[acc])\n\t"

template <bool ACTIVATIONS_UNSIGNED>
inline void accumulate_6x16_asm(const void* a, int64_t lda, const void* b, int64_t groups, __m256i (&acc)[6][2]) {
  alignas(32) static const int16_t ones[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const uint8_t* row0 = static_cast<const uint8_t*>(a);
  const uint8_t* row3 = row0 + 3 * lda;
  const uint8_t* panel = static_cast<const uint8_t*>(b);
#define SHRINK_TILE_OPERANDS                                                                              \
  : [a] "+r"(row0), [a3] "+r"(row3), [b] "+r"(panel), [groups] "+r"(groups)                                \
  : [lda] "r"(lda), [ones] "m"(ones), [acc] "r"(&acc[0][0])                                                 \
  : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
    "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
  if constexpr (ACTIVATIONS_UNSIGNED) {
    asm volatile(SHRINK_TILE_LOOP(SHRINK_MADD_U8_ACTIVATIONS) SHRINK_TILE_OPERANDS);
  } else {
    asm volatile(SHRINK_TILE_LOOP(SHRINK_MADD_U8_WEIGHTS) SHRINK_TILE_OPERANDS);
  }
#undef SHRINK_TILE_OPERANDS
}

#undef SHRINK_TILE_LOOP
#undef SHRINK_MADD_U8_WEIGHTS
#undef SHRINK_MADD_U8_ACTIVATIONS
#undef SHRINK_TILE_ROW
#endif

template <int ROWS, bool ACTIVATIONS_UNSIGNED>
inline void accumulate_x16(const void* a, int64_t lda, const void* b, int64_t groups, __m256i (&acc)[ROWS][2]) {
  if (groups <= 0) return;
#if defined(__GNUC__) && defined(__x86_64__)
  if constexpr (ROWS == 6) {
    accumulate_6x16_asm<ACTIVATIONS_UNSIGNED>(a, lda, b, groups, acc);
    return;
  }
#endif
  accumulate_x16_intrinsics<ROWS, ACTIVATIONS_UNSIGNED>(static_cast<const uint8_t*>(a), lda,
                                                        static_cast<const uint8_t*>(b), groups, acc);
}

}  // namespace shrink::kernel_variants::avx2
