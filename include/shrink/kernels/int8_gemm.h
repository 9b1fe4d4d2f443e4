// The int8 matmul path: per-row dynamic quantization of activations to u8, s8 weights packed for
// the kernels, and u8 x s8 -> s32 GEMM with a fused epilogue.
//
// Activations are u8 with a 7-bit range [0, 127] (PyTorch's reduce_range on x86): a u8 x s8 pair
// sum then stays within int16 (2 * 127 * 128 = 32512), so AVX2's vpmaddubsw never saturates and
// every variant equals the scalar reference exactly.
//
// Packed weights: output channels in panels of 16, k in groups of 4; panel p holds, for each
// group g, 16 channels x 4 bytes: packed[(p * k_groups + g) * 64 + c * 4 + j] = W[16p + c][4g + j]
// (zero beyond n and k). This is the operand layout of AVX2 vpmaddubsw and of AVX512-VNNI vpdpbusd.
#pragma once
#include <cstddef>
#include <cstdint>

namespace shrink {

constexpr int64_t kInt8Panel = 16;  // output channels per panel
constexpr int64_t kInt8Group = 4;   // k values per group

inline int64_t int8_padded_k(int64_t k) { return (k + kInt8Group - 1) / kInt8Group * kInt8Group; }
inline size_t int8_packed_bytes(int64_t n, int64_t k) {
  return size_t((n + kInt8Panel - 1) / kInt8Panel * kInt8Panel * int8_padded_k(k));
}
// W is [n][k] row-major (PyTorch's Linear layout). col_sums[c] = sum_k W[c][k] (for zero points).
void pack_int8_weights(const int8_t* w, int64_t n, int64_t k, int8_t* packed, int32_t* col_sums);

// What happens to the s32 accumulator acc[i][c] (already corrected for the activation zero):
//   v = float(acc) * (a_scale[i] * b_scale[c]) + (bias ? bias[c] : 0); if relu, v = max(v, 0)
// then either out_f32[i * ldo + c] = v, or out_u8[i * ldo + c] = clamp(nearbyint(v * out_inverse_scale) + out_zero,
// 0, out_max) (out_max 127 keeps the result a valid 7-bit input of the next int8 layer).
struct Int8Epilogue {
  const float* a_scale = nullptr;   // per row of A
  const int32_t* a_zero = nullptr;  // per row of A
  const float* b_scale = nullptr;   // per output channel
  const int32_t* b_col_sums = nullptr;
  const float* bias = nullptr;      // optional
  bool relu = false;
  float* out_f32 = nullptr;  // one of out_f32 / out_u8
  uint8_t* out_u8 = nullptr;
  float out_inverse_scale = 1.f;
  int32_t out_zero = 0;
  int32_t out_max = 255;
  int64_t ldo = 0;
};

// A: m rows of u8, lda >= int8_padded_k(k); bytes between k and the padded k must be readable
// (their values do not matter: the packed weights are zero there). packed_b on a 64-byte line
// for speed (any address works): the AMX kernel's tile rows are 64 bytes of it.
using GemmU8S8Fn = void (*)(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t lda, const int8_t* packed_b,
                            const Int8Epilogue& epilogue);

// Per-row affine quantization of f32 rows to u8 in [0, 127] (PyTorch's convention: the range is
// widened to include 0, scale = (max - min) / 127, zero = -round(min / scale)), q = clamp(
// nearbyint(x * (1 / scale)) + zero, 0, 127). Writes zeros in q between k and ldq.
using QuantizeRowsU8Fn = void (*)(const float* x, int64_t m, int64_t k, int64_t ldx, uint8_t* q, int64_t ldq,
                                  float* scale, int32_t* zero);

// The scale and zero of one row's range (shared by every variant so they agree bit for bit).
void u8_row_qparams(float min, float max, float& scale, int32_t& zero);

}  // namespace shrink
