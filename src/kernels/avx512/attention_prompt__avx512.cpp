// attend_prompt_f32 (registry.h) with AVX-512: the shared body (attend_prompt_body.h) with 16-lane
// vectors, eight query rows a pass (16 score and 16 output accumulators). Head widths not a
// multiple of 16 use the AVX2 variant.
#include "kernels/avx2/attend_prompt_body.h"
#include "kernels/avx512/lanes16.h"
#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {

void attend_prompt_f32__avx512(int64_t rows, const float* q, int64_t q_stride, const float* key_blocks, const float* v,
                               int64_t v_stride, int64_t keys, int64_t dim, float scale, int64_t diagonal, float* y,
                               int64_t y_stride) {
  if (dim % Lanes16::kLanes || dim > prompt::kMaxDim)
    return attend_prompt_f32__avx2(rows, q, q_stride, key_blocks, v, v_stride, keys, dim, scale, diagonal, y, y_stride);
  prompt::attend<Lanes16>(rows, q, q_stride, key_blocks, v, v_stride, keys, dim, scale, diagonal, y, y_stride);
}

}  // namespace shrink::kernel_variants
