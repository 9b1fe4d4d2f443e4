// The decode kernels that read a 4-row panel two rows per 64-byte load (the int4 GEMV,
// int4_gemv_vnni.h; the Q8_0 head, gemm_q8_0_i8__vnni.cpp) keep their f32 sums two rows to a
// register: rows 0 and 1 in lanes 0-7 and 8-15 of one, rows 2 and 3 in those of the other.
// Include only from files compiled with the VNNI flags.
#pragma once
#include <immintrin.h>

#include "kernels/avx2/horizontal.h"

namespace shrink::kernel_variants::vnni {

// The four rows' totals (row r in element r).
inline __m128 panel_row_totals(__m512 rows01, __m512 rows23) {
  const __m256 rows[4] = {_mm512_extractf32x8_ps(rows01, 0), _mm512_extractf32x8_ps(rows01, 1),
                          _mm512_extractf32x8_ps(rows23, 0), _mm512_extractf32x8_ps(rows23, 1)};
  return avx2::sum_four(rows);
}

}  // namespace shrink::kernel_variants::vnni
