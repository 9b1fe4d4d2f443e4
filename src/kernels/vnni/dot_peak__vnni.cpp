// The ceiling of the int8 kernels that run on AVX512-VNNI: `rounds` x 24 vpdpbusd on 512-bit
// registers, 24 independent accumulators (each instruction's 4-cycle latency hidden behind the
// others), no loads. Each instruction is 64 u8 x s8 multiply-adds. On the 2-core Zen 4 host one
// core ran 3.64-3.66 of them a nanosecond: one a cycle (Zen 4 splits a 512-bit vpdpbusd into two
// 256-bit halves on its two multiply pipes), 466-468 GOP/s a core.
// The loop is written in assembly: with intrinsics GCC copied accumulators between registers and
// the stack inside it, and the probe would have measured the copies.
#include <immintrin.h>

#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {

static_assert(kDotPeakChains == 24, "the assembly below runs 24 chains: zmm8 to zmm31");

void dot_peak__vnni(int64_t rounds) {
  if (rounds <= 0) return;
  const __m512i a = _mm512_set1_epi32(0x01010101), b = _mm512_set1_epi32(0x01010101);
#define SHRINK_DOT(r) "vpdpbusd %[b], %[a], %%zmm" #r "\n\t"
  asm volatile(
      "1:\n\t" SHRINK_DOT(8) SHRINK_DOT(9) SHRINK_DOT(10) SHRINK_DOT(11) SHRINK_DOT(12) SHRINK_DOT(13) SHRINK_DOT(14)
          SHRINK_DOT(15) SHRINK_DOT(16) SHRINK_DOT(17) SHRINK_DOT(18) SHRINK_DOT(19) SHRINK_DOT(20) SHRINK_DOT(21)
              SHRINK_DOT(22) SHRINK_DOT(23) SHRINK_DOT(24) SHRINK_DOT(25) SHRINK_DOT(26) SHRINK_DOT(27)
                  SHRINK_DOT(28) SHRINK_DOT(29) SHRINK_DOT(30) SHRINK_DOT(31) "dec %[n]\n\t"
                                                                            "jnz 1b\n\t"
      : [n] "+r"(rounds)
      : [a] "v"(a), [b] "v"(b)
      : "cc", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19",
        "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");
#undef SHRINK_DOT
}

}  // namespace shrink::kernel_variants
