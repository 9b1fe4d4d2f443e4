// attend_f16kv (registry.h) with AVX-512: the shared body (attend_f16kv_body.h) with 16-lane
// vectors, one per 16-position key block; 64 output dimensions a pass (three queries' 12
// accumulators and 4 value vectors fit the 32 registers). Head widths not a multiple of 16 use
// the AVX2 variant.
#include "kernels/avx2/attend_f16kv_body.h"
#include "kernels/kernel_variants.h"
#include "kernels/avx512/lanes16.h"

namespace shrink::kernel_variants {

void attend_f16kv__avx512(int64_t queries, const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v,
                          int64_t v_stride, int64_t length, int64_t dim, float scale, float* y, int64_t y_stride,
                          float* scratch, float* lse) {
  if (dim % Lanes16::kLanes || length == 0)
    return attend_f16kv__avx2(queries, q, q_stride, k, v, v_stride, length, dim, scale, y, y_stride, scratch, lse);
  f16kv::attend<Lanes16>(queries, q, q_stride, k, v, v_stride, length, dim, scale, y, y_stride, lse);
}

}  // namespace shrink::kernel_variants
