// gemm_q4s8 on a CPU with AVX512-VNNI and GFNI: the VNNI kernel, its decode GEMV's panel kernel
// taking each byte's high nibble down with one vgf2p8affineqb (int4_gemv_vnni.h). With the
// weights in L2 that panel kernel took 0.91-0.96x the time of the shift-and-mask one at SmolLM2's
// shapes (1536 x 576 g32, g64; 576 x 1536 g128), with identical results. The 16-row blocks that
// decode such layers now run the same kernel in both files (it moves no nibble). This file alone
// gets -mgfni, so nothing else in the library can come to need GFNI.
#include "kernels/kernel_variants.h"
#include "kernels/vnni/int4_gemv_vnni.h"

namespace shrink::kernel_variants {

void gemm_q4s8__gfni(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
                     const float* bias, float* out, int64_t ldo) {
  if (vnni_gemv::gemv</*GFNI=*/true>(m, q, a_scale, group_sums, w, bias, out)) return;
  gemm_q4s8__vnni(m, q, a_scale, group_sums, w, bias, out, ldo);
}

}  // namespace shrink::kernel_variants
