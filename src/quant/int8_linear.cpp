// Per-channel int8 weights and the dynamic int8 matmul (per-row u8 activations).
#include "shrink/quant/int8_linear.h"

#include <algorithm>

#include "core/weight_arena.h"
#include "kernels/line_buffer.h"
#include "shrink/core/error.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/int8_gemm.h"
#include "shrink/kernels/registry.h"
#include "shrink/quant/scheme.h"

namespace shrink {
namespace {

QuantScheme int8_weight_scheme(int bits) {
  QuantScheme scheme;
  scheme.bits = bits;
  scheme.is_signed = true;
  scheme.mapping = QuantMapping::symmetric;
  scheme.narrow_range = true;
  return scheme;
}

void expect_weight_pair(const Tensor& q, const Tensor& scale) {
  if (q.dtype() != DType::i8 || q.rank() != 2)
    throw UsageError("int8 weights must be an i8 matrix", "PackedInt8Matrix");
  if (scale.dtype() != DType::f32 || scale.rank() != 1 || scale.shape()[0] != q.shape()[0])
    throw UsageError("int8 weight scales must be f32, one per output channel", "PackedInt8Matrix");
}

}  // namespace

Int8ChannelWeights quantize_per_channel_int8(const Tensor& w, int bits) {
  if (w.dtype() != DType::f32 || w.rank() != 2)
    throw UsageError("per-channel int8 quantization needs an f32 matrix", "quantize_per_channel_int8");
  const QuantScheme scheme = int8_weight_scheme(bits);
  QParams qp = choose_qparams(w, scheme, per_channel_block(w.shape(), 0));
  return {quantize(w, qp, scheme).to(DType::i8), qp.scale.reshape(Shape{w.shape()[0]}).contiguous()};
}

Tensor dequantize_per_channel_int8(const Int8ChannelWeights& weights) {
  expect_weight_pair(weights.q, weights.scale);
  const int64_t n = weights.q.shape()[0], k = weights.q.shape()[1];
  Tensor out = Tensor::uninitialized(weights.q.shape(), DType::f32);
  const Tensor q = weights.q.contiguous(), scale = weights.scale.contiguous();
  const int8_t* in = q.data<int8_t>();
  const float* s = scale.data<float>();
  float* dst = out.mutable_data<float>();
  for (int64_t c = 0; c < n; ++c)
    for (int64_t j = 0; j < k; ++j) dst[c * k + j] = float(in[c * k + j]) * s[c];
  return out;
}

Tensor fake_quantize_per_channel(const Tensor& w, int bits) {
  const Tensor matrix = w.contiguous().reshape(Shape{w.shape()[0], w.numel() / w.shape()[0]});
  return dequantize_per_channel_int8(quantize_per_channel_int8(matrix, bits)).reshape(w.shape());
}

QuantScheme u8_activation_scheme() {
  QuantScheme scheme;
  scheme.bits = 8;
  scheme.is_signed = false;
  scheme.mapping = QuantMapping::affine;
  scheme.reduce_range = true;  // [0, 127]
  return scheme;
}

U8QParams u8_activation_qparams(float low, float high) {
  const QuantScheme scheme = u8_activation_scheme();
  Tensor lo = Tensor::empty(Shape{1}, DType::f32), hi = Tensor::empty(Shape{1}, DType::f32);
  lo.mutable_data<float>()[0] = low;
  hi.mutable_data<float>()[0] = high;
  const QParams q = qparams_from_range(lo, hi, scheme, {});
  return {q.scale.data<float>()[0], int32_t(q.zero.data<float>()[0])};
}

PackedInt8Matrix::PackedInt8Matrix(const Tensor& q_in, const Tensor& scale_in) {
  expect_weight_pair(q_in, scale_in);
  const Tensor q = q_in.contiguous(), scale = scale_in.contiguous();
  n_ = q.shape()[0];
  k_ = q.shape()[1];
  const auto block = std::make_shared<weight_arena::Block>(weight_arena::take(int8_packed_bytes(n_, k_)));
  col_sums_.resize(size_t(n_));
  pack_int8_weights(q.data<int8_t>(), n_, k_, block->as<int8_t>(), col_sums_.data());
  packed_ = std::shared_ptr<const int8_t>(block, block->as<const int8_t>());
  scale_.assign(scale.data<float>(), scale.data<float>() + n_);
}

void PackedInt8Matrix::matmul_dynamic(const float* x, int64_t m, int64_t ldx, const float* bias, float* y,
                                      int64_t ldy) const {
  if (m <= 0) return;
  const KernelTable& table = kernels();
  const int64_t lda = int8_padded_k(k_);
  // The quantized rows in scratch kept by the calling thread: vectors here were zero-filled and,
  // above glibc's mmap threshold, mapped and faulted in anew on every call (at 1024^3 the
  // quantization and those took 0.7x as long as the GEMM itself).
  thread_local kernel_variants::LineBuffer<uint8_t> rows;
  thread_local kernel_variants::LineBuffer<float> scales;
  thread_local kernel_variants::LineBuffer<int32_t> zeros;
  uint8_t* a = rows.get(size_t(m * lda));
  float* a_scale = scales.get(size_t(m));
  int32_t* a_zero = zeros.get(size_t(m));
  parallel_for(0, m, std::max<int64_t>(1, 16384 / std::max<int64_t>(k_, 1)), [&](int64_t first, int64_t last) {
    table.quantize_rows_u8(x + first * ldx, last - first, k_, ldx, a + first * lda, lda, a_scale + first,
                           a_zero + first);
  });
  matmul_u8(a, lda, a_scale, a_zero, m, bias, y, ldy);
}

void PackedInt8Matrix::matmul_u8(const uint8_t* a, int64_t lda, const float* a_scale, const int32_t* a_zero,
                                 int64_t m, const float* bias, float* y, int64_t ldy) const {
  Int8Epilogue e;
  e.a_scale = a_scale;
  e.a_zero = a_zero;
  e.b_scale = scale_.data();
  e.b_col_sums = col_sums_.data();
  e.bias = bias;
  e.out_f32 = y;
  e.ldo = ldy;
  kernels().gemm_u8s8(m, n_, k_, a, lda, packed_.get(), e);
}

}  // namespace shrink
