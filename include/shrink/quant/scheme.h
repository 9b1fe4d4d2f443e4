// Quantization schemes and torchao's three primitives: choose_qparams, quantize, dequantize,
// parameterised by a block size per dimension. Per-tensor, per-channel (any axis) and per-group
// granularity are all block sizes:
//   per tensor of shape [N, K]:     block [N, K]       (one scale)
//   per channel, axis 0:            block [1, K]       (N scales)
//   per group of 128 along axis 1:  block [1, 128]     (N x K/128 scales)
//   an empty block: one block for the whole tensor, whatever its shape (per-tensor observers)
// Integer values q and reals x relate by x ≈ (q - zero) * scale with an integer zero, except in
// ggml's Q4_1-style affine convention, where x ≈ q * scale + min with a float min.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "shrink/core/tensor.h"

namespace shrink {

enum class QuantMapping { symmetric, affine };

// How a block's range becomes scale and zero. Each follows a published implementation:
enum class QParamsConvention {
  // PyTorch observers: the range is widened to include 0. Symmetric: scale = max|x| / ((qmax -
  // qmin) / 2), zero = 0 for signed, (qmin + qmax + 1) / 2 for unsigned. Affine: scale = (max -
  // min) / (qmax - qmin), zero = qmin - round(min / scale), clamped to [qmin, qmax].
  pytorch,
  // GPTQ / AWQ reference code (unsigned q in [0, maxq]): range widened to include 0; affine:
  // scale = (max - min) / maxq, zero = round(-min / scale); symmetric: max = max|x|, min = -max,
  // zero = (maxq + 1) / 2. An all-zero block uses min = -1, max = 1.
  gptq,
  // ggml (llama.cpp's quantize_row_*_ref). Symmetric unsigned is Q4_0's: m = the value of largest
  // magnitude, with its sign, scale = m / -2^(bits-1), zero = 2^(bits-1), q = min(maxq,
  // trunc(x / scale + zero + 0.5)). Symmetric signed is Q8_0's: scale = max|x| / qmax, q =
  // round-half-away(x / scale) in [-qmax, qmax]. Affine is Q4_1's: the range is not widened to 0,
  // scale = (max - min) / maxq, q = min(maxq, trunc((x - min) / scale + 0.5)), and min is kept as
  // a float. Divisions are multiplications by 1/scale, as in ggml, so results match bit for bit.
  ggml,
};

struct QuantScheme {
  int bits = 8;          // 2..8
  bool is_signed = true;  // values in [-2^(b-1), 2^(b-1) - 1], else [0, 2^b - 1]
  QuantMapping mapping = QuantMapping::symmetric;
  QParamsConvention convention = QParamsConvention::pytorch;
  bool reduce_range = false;  // one bit less of range (for int8 instructions that saturate)
  bool narrow_range = false;  // signed symmetric without the most negative value: [-127, 127]

  int32_t quant_min() const;
  int32_t quant_max() const;
  void validate() const;  // UsageError for bits outside 2..8 or contradictory settings
  std::string describe() const;  // "int4 affine (gptq)"
};

// Block sizes for the common granularities (see the top of this file).
std::vector<int64_t> per_tensor_block(const Shape& shape);
std::vector<int64_t> per_channel_block(const Shape& shape, int axis);
std::vector<int64_t> per_group_block(const Shape& shape, int64_t group_size, int axis = -1);

// The shape of the qparams for a tensor of this shape: shape / block, dimension by dimension.
// UsageError when the block does not divide the shape.
Shape qparams_shape(const Shape& shape, const std::vector<int64_t>& block_size);

struct QParams {
  Tensor scale;  // f32, one per block, shape = input shape / block size
  Tensor zero;   // f32 holding integers: x ≈ (q - zero) * scale
  Tensor min;    // ggml affine only (Q4_1-style): x ≈ q * scale + min, and zero is 0
  std::vector<int64_t> block_size;
};

// The block's range -> scale and zero, one per block. `low` and `high` are f32 tensors of the
// per-block minimum and maximum (an observer's output), shaped input / block.
QParams qparams_from_range(const Tensor& low, const Tensor& high, const QuantScheme& scheme,
                           std::vector<int64_t> block_size);
// Min and max of each block of x, then qparams_from_range (ggml Q4_0 uses the signed max).
QParams choose_qparams(const Tensor& x, const QuantScheme& scheme, std::vector<int64_t> block_size);
// x (f32) -> integers as i32 (the packed formats narrow them).
Tensor quantize(const Tensor& x, const QParams& qparams, const QuantScheme& scheme);
// integers (i32 or i8/u8) -> f32.
Tensor dequantize(const Tensor& q, const QParams& qparams);
// f32 mask of x's shape: 1 where x's grid value before clamping lies in [qmin, qmax], else 0.
Tensor grid_mask(const Tensor& x, const QParams& qparams, const QuantScheme& scheme);

}  // namespace shrink
