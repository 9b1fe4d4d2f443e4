// attend_prompt_f32 (registry.h) with AVX2: the shared body (attend_prompt_body.h) with 8-lane
// vectors, four query rows a pass. Head widths not a multiple of 8, or over 256, use the reference.
#include "kernels/avx2/attend_prompt_body.h"
#include "kernels/avx2/lanes8.h"
#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {

void attend_prompt_f32__avx2(int64_t rows, const float* q, int64_t q_stride, const float* key_blocks, const float* v,
                             int64_t v_stride, int64_t keys, int64_t dim, float scale, int64_t diagonal, float* y,
                             int64_t y_stride) {
  if (dim % Lanes8::kLanes || dim > prompt::kMaxDim)
    return attend_prompt_f32__ref(rows, q, q_stride, key_blocks, v, v_stride, keys, dim, scale, diagonal, y, y_stride);
  prompt::attend<Lanes8>(rows, q, q_stride, key_blocks, v, v_stride, keys, dim, scale, diagonal, y, y_stride);
}

}  // namespace shrink::kernel_variants
