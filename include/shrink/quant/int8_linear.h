// Int8 matrices for the quantized layers: per-output-channel symmetric int8 weights ([-127, 127],
// scale = max|w| / 127, PyTorch's per-channel qint8 with a narrow range), as stored in model
// files, and their packed form for the int8 kernels (built once per layer, see Node::prepared).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "shrink/core/tensor.h"
#include "shrink/quant/scheme.h"

namespace shrink {

struct Int8ChannelWeights {
  Tensor q;      // i8 [n, k]
  Tensor scale;  // f32 [n]: w[c][j] ≈ q[c][j] * scale[c]
};

// w: f32 [n, k]; bits 2..8 (values in [-(2^(bits-1) - 1), 2^(bits-1) - 1], stored as i8, so
// 4-bit weights run on the same int8 kernels).
Int8ChannelWeights quantize_per_channel_int8(const Tensor& w, int bits = 8);
// w rounded to that grid and back (what weight fake quantization computes with).
Tensor fake_quantize_per_channel(const Tensor& w, int bits);

// Activations of the static int8 region: u8 in [0, 127], one scale and zero per tensor, from an
// observed range (PyTorch's convention: the range widened to include 0).
struct U8QParams {
  float scale = 1.f;
  int32_t zero = 0;
};
U8QParams u8_activation_qparams(float low, float high);
QuantScheme u8_activation_scheme();  // u8, affine, reduce_range: [0, 127]
Tensor dequantize_per_channel_int8(const Int8ChannelWeights& weights);  // f32 [n, k]

class PackedInt8Matrix {
 public:
  PackedInt8Matrix() = default;
  PackedInt8Matrix(const Tensor& q, const Tensor& scale);  // i8 [n, k], f32 [n]
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  const int8_t* packed() const { return packed_.get(); }
  const int32_t* col_sums() const { return col_sums_.data(); }
  const float* scale() const { return scale_.data(); }

  // Dynamic quantization: each row of x (m rows of k floats, stride ldx) is quantized to u8 with
  // its own range, then y = x_q W_q^T (+ bias) in f32 (stride ldy). bias may be null.
  void matmul_dynamic(const float* x, int64_t m, int64_t ldx, const float* bias, float* y, int64_t ldy) const;
  // The same for rows quantized already (quantize_rows_u8: u8 [m, lda], lda = int8_padded_k(k),
  // a scale and zero per row).
  void matmul_u8(const uint8_t* a, int64_t lda, const float* a_scale, const int32_t* a_zero, int64_t m,
                 const float* bias, float* y, int64_t ldy) const;

 private:
  int64_t n_ = 0, k_ = 0;
  // In 2 MB pages (src/core/weight_arena.h), shared by copies: the matrix never changes once made.
  std::shared_ptr<const int8_t> packed_;
  std::vector<int32_t> col_sums_;
  std::vector<float> scale_;
};

}  // namespace shrink
