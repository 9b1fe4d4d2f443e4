// Weight-only quantization of Linear weights W (out, in) in groups along the input dimension,
// in the scale/zero convention of the GPTQ and AWQ reference code (QParamsConvention::gptq:
// range widened to include 0, scale = (max - min) / maxq, zero = round(-min / scale); symmetric
// zero = (maxq + 1) / 2), dequantized back to f32 (the model computes with exactly the values
// the int4 kernels and the GGUF export store).
// - RTN: round to nearest, group by group.
// - GPTQ (Frantar et al. 2022, and their reference implementation gptq.py): H = 2/n sum x x^T over
//   the layer's calibration inputs; dead inputs (H_ii = 0) get H_ii = 1 and zero weights;
//   damping 0.01 * mean(diag H), raised tenfold and retried when the Cholesky factorisation fails;
//   the upper Cholesky factor of H^-1; column by column quantization with the error spread over
//   the columns not yet quantized, lazily in blocks of 128; act-order (columns by decreasing
//   H_ii, permutation undone at the end); group scales from the partly updated weights as the
//   reference does, or from the original weights (static groups).
#pragma once
#include <string>
#include <vector>

#include "shrink/core/tensor.h"

namespace shrink::compress {

struct WeightOnlyConfig {
  int bits = 4;              // 2..8
  int64_t group_size = 128;  // 0: one group per row; a last group may be shorter (576 = 4 x 128 + 64)
  bool symmetric = false;
  void validate(int64_t in_features) const;  // UsageError for bits outside 2..8
  std::string describe() const;              // "int4 g128 affine"
  int64_t group_of(int64_t in_features) const { return group_size > 0 ? group_size : in_features; }
};

// The integer form of a group-quantized weight: weight ≈ (codes - zero) * scale, groups of
// `group` consecutive inputs per row (the last one shorter when group does not divide in).
struct GroupQuantized {
  Tensor codes;        // u8 (out, in), 0 .. 2^bits - 1
  Tensor scale, zero;  // f32 (out, ceil(in / group))
  int64_t group = 0;
  int bits = 0;
  bool defined() const { return codes.defined(); }
};

// Round to nearest; returns the dequantized weights (and the integer form when asked).
Tensor rtn_quantize(const Tensor& weight, const WeightOnlyConfig& config, GroupQuantized* integers = nullptr);

struct GptqOptions {
  double damp = 0.01;  // fraction of mean(diag H)
  int64_t block = 128;
  bool act_order = false;
  bool static_groups = false;
};

struct GptqResult {
  Tensor weight;                // dequantized, original column order
  double loss = 0;              // the reference's sum of (w - q)^2 / (2 [H^-1]_ii^2)
  double damp = 0;              // the damping that worked (fraction of mean diag)
  int retries = 0;              // factorisations that failed before it
  int64_t dead_columns = 0;
  // Undefined for act-order without static groups (its groups are not runs of inputs).
  GroupQuantized integers;
};
GptqResult gptq_quantize(const Tensor& weight, const Tensor& hessian, const WeightOnlyConfig& config,
                         const GptqOptions& options = {});

// The upper Cholesky factor U of (H + damp * mean(diag H) * I)^-1 (row-major, H^-1 = U^T U) as
// GPTQ and SparseGPT use it, in f32 as their reference code; `h` (n x n) must have its dead
// columns already set to H_ii = 1. When the factorisation fails the damping is raised tenfold
// (at most four times; then an Error).
struct InverseHessianFactor {
  std::vector<float> upper;
  double damp = 0;  // the damping that worked (fraction of mean diag)
  int retries = 0;
};
InverseHessianFactor inverse_hessian_factor(const std::vector<float>& h, int64_t n, double damp);

// The Hessian (f32, as accumulated) with its dead inputs (H_ii = 0) handled as GPTQ and SparseGPT
// do: H_ii = 1 and those columns of the row-major weights w (rows x n) zeroed. Returns the dead
// count. (It was held in f64, which changed no result, the values being f32's, and took n^2 x 8
// bytes: 512 MB for an 8192-wide layer, twice that during act-order's permutation.)
int64_t hessian_without_dead_columns(const Tensor& hessian, float* w, int64_t rows, int64_t n, std::vector<float>& h);

// Sums x x^T over rows of activations (..., dim); hessian() = 2 / rows * sum.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t dim);
  void add(const Tensor& x);
  Tensor hessian() const;  // f32 (dim, dim)
  int64_t rows() const { return rows_; }
  int64_t dim() const { return dim_; }

 private:
  int64_t dim_, rows_ = 0;
  Tensor sum_;
};

}  // namespace shrink::compress
