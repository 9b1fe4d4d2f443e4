// choose_qparams / quantize / dequantize over blocks of any shape (torchao's primitives), with the
// PyTorch, GPTQ/AWQ and ggml conventions for turning a range into scale and zero.
#include <algorithm>
#include <cmath>
#include <limits>

#include "quant/blocks.h"
#include "shrink/quant/scheme.h"

namespace shrink {

using quant_detail::for_each_element;

Shape qparams_shape(const Shape& shape, const std::vector<int64_t>& block) {
  if (block.empty()) return Shape({});  // one block for the whole tensor, whatever its shape
  if (int(block.size()) != shape.rank())
    throw UsageError("block size has " + std::to_string(block.size()) + " dimensions, the tensor " +
                     std::to_string(shape.rank()));
  std::vector<int64_t> dims;
  for (int i = 0; i < shape.rank(); ++i) {
    if (block[size_t(i)] <= 0 || shape[i] % block[size_t(i)] != 0)
      throw UsageError("block size does not divide shape " + shape.to_string() + " in dimension " + std::to_string(i));
    dims.push_back(shape[i] / block[size_t(i)]);
  }
  return Shape(std::move(dims));
}

namespace {

Tensor as_f32(const Tensor& x) { return x.dtype() == DType::f32 ? x.contiguous() : x.to(DType::f32); }

float round_half_away(float v) { return std::round(v); }

}  // namespace

QParams qparams_from_range(const Tensor& low_in, const Tensor& high_in, const QuantScheme& scheme,
                           std::vector<int64_t> block_size) {
  scheme.validate();
  const Tensor low = as_f32(low_in), high = as_f32(high_in);
  if (low.shape() != high.shape()) throw UsageError("range tensors differ in shape");
  QParams q;
  q.block_size = std::move(block_size);
  q.scale = Tensor::empty(low.shape(), DType::f32);
  q.zero = Tensor::empty(low.shape(), DType::f32);
  const bool ggml_affine = scheme.convention == QParamsConvention::ggml && scheme.mapping == QuantMapping::affine;
  if (ggml_affine) q.min = Tensor::empty(low.shape(), DType::f32);
  float* scale = q.scale.mutable_data<float>();
  float* zero = q.zero.mutable_data<float>();
  const float qmin = float(scheme.quant_min()), qmax = float(scheme.quant_max());
  constexpr float kEps = std::numeric_limits<float>::epsilon();
  for (int64_t i = 0; i < low.numel(); ++i) {
    float lo = low.data<float>()[i], hi = high.data<float>()[i];
    switch (scheme.convention) {
      case QParamsConvention::pytorch: {
        lo = std::min(lo, 0.f);
        hi = std::max(hi, 0.f);
        if (scheme.mapping == QuantMapping::symmetric) {
          scale[i] = std::max(std::max(-lo, hi) / ((qmax - qmin) / 2), kEps);
          zero[i] = scheme.is_signed ? 0.f : std::floor((qmin + qmax + 1) / 2);
        } else {
          scale[i] = std::max((hi - lo) / (qmax - qmin), kEps);
          zero[i] = std::clamp(qmin - std::nearbyint(lo / scale[i]), qmin, qmax);
        }
        break;
      }
      case QParamsConvention::gptq: {  // reproduces quant.py's find_params, quirks included
        lo = std::min(lo, 0.f);
        hi = std::max(hi, 0.f);
        if (scheme.mapping == QuantMapping::symmetric) {
          hi = std::max(-lo, hi);
          if (lo < 0) lo = -hi;
        }
        if (lo == 0 && hi == 0) {
          lo = -1;
          hi = 1;
        }
        scale[i] = (hi - lo) / qmax;
        zero[i] = scheme.mapping == QuantMapping::symmetric ? std::floor((qmax + 1) / 2) : std::nearbyint(-lo / scale[i]);
        break;
      }
      case QParamsConvention::ggml: {
        if (scheme.mapping == QuantMapping::affine) {  // Q4_1
          scale[i] = (hi - lo) / qmax;
          zero[i] = 0;
          q.min.mutable_data<float>()[i] = lo;
        } else if (scheme.is_signed) {  // Q8_0: low/high hold -max|x| and max|x|
          scale[i] = std::max(-lo, hi) / qmax;
          zero[i] = 0;
        } else {  // Q4_0: the value of largest magnitude, with its sign
          const float half = float(1 << (scheme.bits - 1));
          scale[i] = (std::fabs(lo) > std::fabs(hi) ? lo : hi) / -half;
          zero[i] = half;
        }
        break;
      }
    }
  }
  return q;
}

QParams choose_qparams(const Tensor& x_in, const QuantScheme& scheme, std::vector<int64_t> block_size) {
  const Tensor x = as_f32(x_in);
  const Shape blocks = qparams_shape(x.shape(), block_size);
  Tensor low = Tensor::empty(blocks, DType::f32), high = Tensor::empty(blocks, DType::f32);
  float* lo = low.mutable_data<float>();
  float* hi = high.mutable_data<float>();
  std::fill(lo, lo + blocks.numel(), std::numeric_limits<float>::infinity());
  std::fill(hi, hi + blocks.numel(), -std::numeric_limits<float>::infinity());
  const float* data = x.data<float>();
  const bool signed_max = scheme.convention == QParamsConvention::ggml && scheme.mapping == QuantMapping::symmetric &&
                          !scheme.is_signed;
  if (signed_max) std::fill(hi, hi + blocks.numel(), 0.f);
  for_each_element(x.shape(), block_size, [&](int64_t e, int64_t b) {
    const float v = data[e];
    if (signed_max) {
      if (std::fabs(v) > std::fabs(hi[b])) hi[b] = v;  // Q4_0 keeps the first of equal magnitudes
      lo[b] = 0;
    } else {
      lo[b] = std::min(lo[b], v);
      hi[b] = std::max(hi[b], v);
    }
  });
  if (scheme.convention == QParamsConvention::ggml && scheme.mapping == QuantMapping::symmetric && scheme.is_signed)
    for (int64_t i = 0; i < blocks.numel(); ++i) {  // Q8_0 uses max|x|
      const float amax = std::max(std::fabs(lo[i]), std::fabs(hi[i]));
      lo[i] = -amax;
      hi[i] = amax;
    }
  return qparams_from_range(low, high, scheme, std::move(block_size));
}

Tensor quantize(const Tensor& x_in, const QParams& qp, const QuantScheme& scheme) {
  scheme.validate();
  const Tensor x = as_f32(x_in);
  Tensor q = Tensor::empty(x.shape(), DType::i32);
  const float* data = x.data<float>();
  const float* scale = qp.scale.data<float>();
  const float* zero = qp.zero.data<float>();
  int32_t* out = q.mutable_data<int32_t>();
  const float qmin = float(scheme.quant_min()), qmax = float(scheme.quant_max());
  const bool ggml = scheme.convention == QParamsConvention::ggml;
  const bool affine = scheme.mapping == QuantMapping::affine;
  for_each_element(x.shape(), qp.block_size, [&](int64_t e, int64_t b) {
    float v;
    if (ggml) {
      const float inverse = scale[b] != 0 ? 1.f / scale[b] : 0.f;
      if (affine) {
        v = std::min(qmax, std::trunc((data[e] - qp.min.data<float>()[b]) * inverse + 0.5f));
      } else if (scheme.is_signed) {
        v = round_half_away(data[e] * inverse);
      } else {
        v = std::min(qmax, std::trunc(data[e] * inverse + (zero[b] + 0.5f)));
      }
    } else {
      v = std::nearbyint(data[e] / scale[b]) + zero[b];
    }
    out[e] = int32_t(std::clamp(v, qmin, qmax));
  });
  return q;
}

Tensor dequantize(const Tensor& q_in, const QParams& qp) {
  const Tensor q = q_in.dtype() == DType::i32 ? q_in.contiguous() : q_in.to(DType::i32);
  Tensor x = Tensor::empty(q.shape(), DType::f32);
  const int32_t* values = q.data<int32_t>();
  const float* scale = qp.scale.data<float>();
  const float* zero = qp.zero.data<float>();
  const float* min = qp.min.defined() ? qp.min.data<float>() : nullptr;
  float* out = x.mutable_data<float>();
  for_each_element(q.shape(), qp.block_size, [&](int64_t e, int64_t b) {
    out[e] = min ? float(values[e]) * scale[b] + min[b] : (float(values[e]) - zero[b]) * scale[b];
  });
  return x;
}

Tensor grid_mask(const Tensor& x_in, const QParams& qp, const QuantScheme& scheme) {
  const Tensor x = as_f32(x_in);
  Tensor mask = Tensor::empty(x.shape(), DType::f32);
  const float* data = x.data<float>();
  const float* scale = qp.scale.data<float>();
  const float* zero = qp.zero.data<float>();
  const float* min = qp.min.defined() ? qp.min.data<float>() : nullptr;
  float* out = mask.mutable_data<float>();
  const float qmin = float(scheme.quant_min()), qmax = float(scheme.quant_max());
  for_each_element(x.shape(), qp.block_size, [&](int64_t e, int64_t b) {
    const float v = min ? std::nearbyint((data[e] - min[b]) / scale[b]) : std::nearbyint(data[e] / scale[b]) + zero[b];
    out[e] = v >= qmin && v <= qmax ? 1.f : 0.f;
  });
  return mask;
}

}  // namespace shrink
