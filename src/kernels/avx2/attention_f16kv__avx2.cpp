// attend_f16kv (registry.h) with AVX2 and F16C: the shared body (attend_f16kv_body.h) with 8-lane
// vectors, two per 16-position key block. Head widths not a multiple of 8 use the reference.
#include "kernels/avx2/attend_f16kv_body.h"
#include "kernels/kernel_variants.h"
#include "kernels/avx2/lanes8.h"

namespace shrink::kernel_variants {

void attend_f16kv__avx2(int64_t queries, const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v,
                        int64_t v_stride, int64_t length, int64_t dim, float scale, float* y, int64_t y_stride,
                        float* scratch, float* lse) {
  if (dim % Lanes8::kLanes || length == 0)
    return attend_f16kv__ref(queries, q, q_stride, k, v, v_stride, length, dim, scale, y, y_stride, scratch, lse);
  f16kv::attend<Lanes8>(queries, q, q_stride, k, v, v_stride, length, dim, scale, y, y_stride, lse);
}

}  // namespace shrink::kernel_variants
