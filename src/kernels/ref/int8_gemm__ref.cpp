// Scalar reference of the int8 path: per-row u8 quantization and u8 x s8 GEMM with its epilogue.
#include <algorithm>
#include <cmath>

#include "kernels/kernel_variants.h"
#include "shrink/kernels/int8_gemm.h"

namespace shrink::kernel_variants {

void quantize_rows_u8__ref(const float* x, int64_t m, int64_t k, int64_t ldx, uint8_t* q, int64_t ldq, float* scale,
                           int32_t* zero) {
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * ldx;
    float lo = 0.f, hi = 0.f;
    for (int64_t j = 0; j < k; ++j) {
      lo = std::min(lo, row[j]);
      hi = std::max(hi, row[j]);
    }
    u8_row_qparams(lo, hi, scale[i], zero[i]);
    const float inverse = 1.f / scale[i];
    for (int64_t j = 0; j < k; ++j)
      q[i * ldq + j] = uint8_t(std::clamp(std::nearbyint(row[j] * inverse) + float(zero[i]), 0.f, 127.f));
    for (int64_t j = k; j < ldq; ++j) q[i * ldq + j] = 0;
  }
}

namespace {
void finish_int8(int64_t i, int64_t c, int32_t acc, const Int8Epilogue& e) {
  float v = float(acc) * (e.a_scale[i] * e.b_scale[c]) + (e.bias ? e.bias[c] : 0.f);
  if (e.relu) v = v > 0.f ? v : 0.f;  // +0 for -0 and nan, like vmaxps(v, 0)
  if (e.out_f32) {
    e.out_f32[i * e.ldo + c] = v;
  } else {
    e.out_u8[i * e.ldo + c] = uint8_t(std::clamp(std::nearbyint(v * e.out_inverse_scale) + float(e.out_zero), 0.f, float(e.out_max)));
  }
}

}  // namespace

void gemm_u8s8__ref(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, const int8_t* packed_b,
                    const Int8Epilogue& e) {
  const int64_t groups = int8_padded_k(k) / kInt8Group;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < n; ++c) {
      const int8_t* panel = packed_b + (c / kInt8Panel) * groups * kInt8Panel * kInt8Group;
      int32_t acc = 0;
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t j = 0; j < kInt8Group; ++j) {
          const int64_t col = g * kInt8Group + j;
          if (col < k) acc += int32_t(a[i * lda + col]) * panel[(g * kInt8Panel + c % kInt8Panel) * kInt8Group + j];
        }
      finish_int8(i, c, acc - e.a_zero[i] * e.b_col_sums[c], e);
    }
}

}  // namespace shrink::kernel_variants
