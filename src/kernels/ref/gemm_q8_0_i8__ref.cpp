// Scalar reference of Q8_0 activations times int8 row weights (gemm_q8_0_i8, registry.h): an
// integer dot product per 32-value block, scaled by the block's f16 scale, summed in f32.
#include <cstring>

#include "kernels/kernel_variants.h"
#include "shrink/core/half.h"
#include "shrink/kernels/ggml_formats.h"

namespace shrink::kernel_variants {

void gemm_q8_0_i8__ref(int64_t m, const void* a_blocks, const int8_t* w, const int8_t*, const float* w_scale, int64_t n,
                       int64_t k, const float* bias, float* y, int64_t ldy) {
  const int64_t blocks = k / 32;
  const auto* base = static_cast<const unsigned char*>(a_blocks);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < n; ++c) {
      float sum = 0.f;
      for (int64_t b = 0; b < blocks; ++b) {
        BlockQ8_0 block;
        std::memcpy(&block, base + (i * blocks + b) * sizeof(BlockQ8_0), sizeof block);
        int32_t dot = 0;
        for (int j = 0; j < 32; ++j) dot += int32_t(block.qs[j]) * w[c * k + b * 32 + j];
        sum += f16_to_f32(block.d) * float(dot);
      }
      y[i * ldy + c] = w_scale[c] * sum + (bias ? bias[c] : 0.f);
    }
}

}  // namespace shrink::kernel_variants
