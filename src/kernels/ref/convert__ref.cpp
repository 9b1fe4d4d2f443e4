// Scalar conversions between f32 and f16/bf16 (the oracle for the SIMD ones).
#include "kernels/kernel_variants.h"
#include "shrink/core/half.h"

namespace shrink::kernel_variants {

void convert_f16_to_f32__ref(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}
void convert_bf16_to_f32__ref(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}
void convert_f32_to_f16__ref(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}
void convert_f32_to_bf16__ref(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

}  // namespace shrink::kernel_variants
