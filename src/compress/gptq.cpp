// RTN and GPTQ weight-only quantization (see gptq.h).
#include "shrink/compress/gptq.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "compress/blocked_cholesky.h"
#include "compress/obs_update.h"
#include "shrink/core/error.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/registry.h"
#include "shrink/quant/scheme.h"

namespace shrink::compress {
namespace {

QuantScheme scheme_of(const WeightOnlyConfig& c) {
  QuantScheme s;
  s.bits = c.bits;
  s.is_signed = false;
  s.mapping = c.symmetric ? QuantMapping::symmetric : QuantMapping::affine;
  s.convention = QParamsConvention::gptq;
  return s;
}

// Per-row scale and zero of columns [begin, begin + width) of the row-major (rows, stride) matrix.
struct GroupParams {
  std::vector<float> scale, zero;
};
GroupParams group_params(const float* w, int64_t rows, int64_t stride, int64_t begin, int64_t width,
                         const QuantScheme& scheme) {
  Tensor slice = Tensor::uninitialized(Shape{rows, width}, DType::f32);
  float* s = slice.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r) std::copy_n(w + r * stride + begin, width, s + r * width);
  QParams q = choose_qparams(slice, scheme, {1, width});
  GroupParams p;
  p.scale.assign(q.scale.data<float>(), q.scale.data<float>() + rows);
  p.zero.assign(q.zero.data<float>(), q.zero.data<float>() + rows);
  return p;
}

// Records group g's per-row scale and zero in the integer form.
void store_group(GroupQuantized& q, int64_t g, const GroupParams& p) {
  const int64_t rows = q.scale.shape()[0], groups = q.scale.shape()[1];
  for (int64_t r = 0; r < rows; ++r) {
    q.scale.mutable_data<float>()[r * groups + g] = p.scale[size_t(r)];
    q.zero.mutable_data<float>()[r * groups + g] = p.zero[size_t(r)];
  }
}

// The reference's quantize(): scale * (clamp(round(x / scale) + zero, 0, maxq) - zero).
inline float quantize_code(float x, float scale, float zero, float maxq) {
  return std::clamp(std::nearbyint(x / scale) + zero, 0.f, maxq);
}

// Upper Cholesky factor U of H^-1 (H^-1 = U^T U, U row-major), in f32 as the reference computes
// it, from `reversed`: H (symmetric, damped) with its n * n values in reverse order, which is
// J H J for the reversal permutation J. Returns false when H is not positive definite.
//
// The reference factors H, inverts H from the factor and factors the inverse (potrf, potri, potrf:
// 4n^3/3 flops). Here J H J = R^T R (potrf, R upper) gives H = L^T L with L = J R J lower, so
// H^-1 = L^-1 L^-T = V^T V with V = L^-T = J R^-T J, upper and positive on its diagonal: as the
// factor is unique, U = V. R^-1 is one trtri, 2n^3/3 flops in all, and R^-1's column-major buffer
// read backwards row-major is J R^-T J, i.e. U: no transpose either. (The two agree up to float
// rounding; the reference's is no more exact.) Both run blocked, over the threads
// (blocked_cholesky.h).
bool inverse_cholesky_upper(std::vector<float>& reversed, int64_t n) {
  // Symmetric, so the buffer is the same matrix column-major: R in its upper triangle, then R^-1.
  if (!cholesky_upper(reversed.data(), n) || !invert_upper(reversed.data(), n)) return false;
  std::reverse(reversed.begin(), reversed.end());
  // Below U's diagonal lies what was J H J's lower triangle, which the factorisations left alone.
  for (int64_t i = 1; i < n; ++i) std::fill_n(reversed.data() + i * n, i, 0.f);
  return true;
}

}  // namespace

void WeightOnlyConfig::validate(int64_t in_features) const {
  if (bits < 2 || bits > 8) throw UsageError(fmt::format("weight bits must be 2..8, not {}", bits), "--bits");
  if (group_size < 0) throw UsageError("the group size must be positive (or 0 for whole rows)", "--group-size");
}

std::string WeightOnlyConfig::describe() const {
  return fmt::format("int{} {} {}", bits, group_size > 0 ? fmt::format("g{}", group_size) : "per-row",
                     symmetric ? "symmetric" : "affine");
}

Tensor rtn_quantize(const Tensor& weight, const WeightOnlyConfig& config, GroupQuantized* integers) {
  if (weight.rank() != 2) throw UsageError("weight-only quantization takes (out, in) weights");
  const int64_t rows = weight.shape()[0], cols = weight.shape()[1];
  config.validate(cols);
  const QuantScheme scheme = scheme_of(config);
  const float maxq = float((1 << config.bits) - 1);
  const Tensor w = weight.to(DType::f32).contiguous();
  // Group by group (a shorter last group when the size does not divide the row, as the GPTQ
  // reference slices), with the same arithmetic as GPTQ's columns.
  const int64_t group = std::min(config.group_of(cols), cols), groups = (cols + group - 1) / group;
  Tensor out = Tensor::uninitialized(w.shape(), DType::f32);
  GroupQuantized q{Tensor::uninitialized(w.shape(), DType::u8), Tensor::uninitialized(Shape{rows, groups}, DType::f32),
                   Tensor::uninitialized(Shape{rows, groups}, DType::f32), group, config.bits};
  for (int64_t g = 0; g < groups; ++g) {
    int64_t begin = g * group, width = std::min(group, cols - begin);
    GroupParams p = group_params(w.data<float>(), rows, cols, begin, width, scheme);
    store_group(q, g, p);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = begin; j < begin + width; ++j) {
        float code = quantize_code(w.data<float>()[r * cols + j], p.scale[size_t(r)], p.zero[size_t(r)], maxq);
        q.codes.mutable_data<uint8_t>()[r * cols + j] = uint8_t(code);
        out.mutable_data<float>()[r * cols + j] = p.scale[size_t(r)] * (code - p.zero[size_t(r)]);
      }
    }
  }
  if (integers) *integers = q;
  return out;
}

int64_t hessian_without_dead_columns(const Tensor& hessian, float* w, int64_t rows, int64_t n, std::vector<float>& h) {
  const Tensor c = hessian.contiguous();
  h.assign(c.data<float>(), c.data<float>() + n * n);
  int64_t dead = 0;
  for (int64_t i = 0; i < n; ++i)
    if (h[size_t(i * n + i)] == 0) {  // an input that never fired
      h[size_t(i * n + i)] = 1;
      for (int64_t r = 0; r < rows; ++r) w[r * n + i] = 0;
      ++dead;
    }
  return dead;
}

InverseHessianFactor inverse_hessian_factor(const std::vector<float>& h, int64_t n, double damp) {
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) mean_diag += double(h[size_t(i * n + i)]);
  mean_diag /= double(n);
  InverseHessianFactor f;
  f.damp = damp;
  for (;;) {
    f.upper.assign(h.rbegin(), h.rend());  // J H J: the diagonal reversed, damped alike
    for (int64_t i = 0; i < n; ++i) f.upper[size_t(i * n + i)] += float(f.damp * mean_diag);
    if (inverse_cholesky_upper(f.upper, n)) return f;
    if (++f.retries > 4)
      throw Error(fmt::format("the Hessian is not positive definite even with damping {}", f.damp), "",
                  "use more calibration samples");
    f.damp *= 10;
  }
}

HessianAccumulator::HessianAccumulator(int64_t dim) : dim_(dim), sum_(Tensor::zeros(Shape{dim, dim}, DType::f32)) {}

void HessianAccumulator::add(const Tensor& x) {
  const Tensor c = x.contiguous();
  if (c.rank() < 1 || c.shape()[c.rank() - 1] != dim_)
    throw UsageError(fmt::format("Hessian of {} inputs fed activations {}", dim_, c.shape().to_string()));
  int64_t rows = c.numel() / dim_;
  if (rows == 0) return;
  // X^T X is symmetric: only its upper triangle is computed (hessian() mirrors it), in one band
  // of rows [r_t, r_t+1) per thread with equal work: the band's square on the diagonal (syrk_f32)
  // and the rectangle right of it (gemm_f32). Row r_t = dim (1 - sqrt(1 - t / T)) leaves t / T of
  // the triangle's area above it; bands start on multiples of 16. On the 2-core Zen 4 host (2048
  // rows a call) this ran at ~190 GFLOP/s of the triangle's work against ~165 for the former
  // 64-row blocks through gemm_f32 alone, whose packing repeated the rows right of each block.
  const int64_t bands = std::max<int64_t>(1, std::min<int64_t>(num_threads(), dim_ / 16));
  std::vector<int64_t> first_row(static_cast<size_t>(bands + 1), dim_);
  for (int64_t t = 0; t < bands; ++t)
    first_row[size_t(t)] = int64_t(double(dim_) * (1.0 - std::sqrt(1.0 - double(t) / double(bands))) / 16.0) * 16;
  const float* xd = c.data<float>();
  float* sum = sum_.mutable_data<float>();
  parallel_for(0, bands, 1, [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t) {
      const int64_t r0 = first_row[size_t(t)], r1 = first_row[size_t(t) + 1];
      if (r0 >= r1) continue;
      kernels().syrk_f32(r1 - r0, rows, xd + r0, dim_, sum + r0 * dim_ + r0, dim_);
      if (r1 < dim_)
        kernels().gemm_f32(true, false, r1 - r0, dim_ - r1, rows, 1.f, xd + r0, dim_, xd + r1, dim_, 1.f,
                           sum + r0 * dim_ + r1, dim_);
    }
  });
  rows_ += rows;
}

Tensor HessianAccumulator::hessian() const {
  Tensor h = sum_.clone();
  float k = rows_ ? float(2.0 / double(rows_)) : 0.f;
  float* d = h.mutable_data<float>();
  for (int64_t i = 0; i < dim_; ++i)
    for (int64_t j = i; j < dim_; ++j) d[j * dim_ + i] = d[i * dim_ + j] *= k;  // upper, mirrored below
  return h;
}

GptqResult gptq_quantize(const Tensor& weight, const Tensor& hessian, const WeightOnlyConfig& config,
                         const GptqOptions& options) {
  if (weight.rank() != 2) throw UsageError("GPTQ takes (out, in) weights");
  const int64_t rows = weight.shape()[0], cols = weight.shape()[1];
  config.validate(cols);
  if (hessian.shape() != Shape{cols, cols}) throw UsageError("GPTQ: the Hessian must be (in, in)");
  if (options.damp <= 0 || options.block <= 0) throw UsageError("GPTQ: damping and block size must be positive");
  const QuantScheme scheme = scheme_of(config);
  const int64_t group = config.group_of(cols);
  const float maxq = float((1 << config.bits) - 1);

  Tensor w_tensor = weight.to(DType::f32).contiguous().clone();
  float* w = w_tensor.mutable_data<float>();
  std::vector<float> h;
  GptqResult result;
  result.dead_columns = hessian_without_dead_columns(hessian, w, rows, cols, h);

  std::vector<GroupParams> static_params;
  if (options.static_groups)
    for (int64_t g = 0; g < cols; g += group)  // the last group may be shorter, as in the loop below
      static_params.push_back(group_params(w, rows, cols, g, std::min(group, cols - g), scheme));

  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (options.act_order) {
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return h[size_t(a * cols + a)] > h[size_t(b * cols + b)]; });
    std::vector<float> pw(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) pw[size_t(r * cols + j)] = w[r * cols + perm[size_t(j)]];
    std::copy(pw.begin(), pw.end(), w);
    std::vector<float> ph(h.size());
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) ph[size_t(i * cols + j)] = h[size_t(perm[size_t(i)] * cols + perm[size_t(j)])];
    h = std::move(ph);
  }

  InverseHessianFactor factor = inverse_hessian_factor(h, cols, options.damp);
  const std::vector<float>& hinv = factor.upper;
  result.damp = factor.damp, result.retries = factor.retries;

  Tensor q_tensor = Tensor::uninitialized(Shape{rows, cols}, DType::f32);
  float* q = q_tensor.mutable_data<float>();
  const int64_t groups = (cols + group - 1) / group;
  const bool contiguous_groups = !options.act_order || options.static_groups;
  GroupQuantized integers{Tensor::uninitialized(Shape{rows, cols}, DType::u8),
                          Tensor::uninitialized(Shape{rows, groups}, DType::f32),
                          Tensor::uninitialized(Shape{rows, groups}, DType::f32), group, config.bits};
  uint8_t* codes = integers.codes.mutable_data<uint8_t>();
  if (options.static_groups)
    for (int64_t g = 0; g < groups; ++g) store_group(integers, g, static_params[size_t(g)]);
  std::vector<double> losses(static_cast<size_t>(rows), 0.0);
  GroupParams current;  // of the group the next column belongs to, when groups are not static
  for (int64_t i1 = 0; i1 < cols; i1 += options.block) {
    const int64_t i2 = std::min(i1 + options.block, cols), count = i2 - i1;
    std::vector<float> w1(size_t(rows * count)), err(size_t(rows * count));
    for (int64_t r = 0; r < rows; ++r) std::copy_n(w + r * cols + i1, count, w1.data() + r * count);
    // Each column's scales and zeros. A group that begins in this block takes them from W as of
    // this block (as the reference does, at the group's first column: W changes between blocks).
    std::vector<GroupParams> begun;
    begun.reserve(size_t(count / group + 1));  // no reallocation: `params` points into it
    std::vector<const GroupParams*> params(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      const int64_t column = i1 + i;
      if (options.static_groups) {
        params[size_t(i)] = &static_params[size_t(perm[size_t(column)] / group)];
        continue;
      }
      if (column % group == 0) {
        begun.push_back(group_params(w, rows, cols, column, std::min(group, cols - column), scheme));
        if (contiguous_groups) store_group(integers, column / group, begun.back());
      }
      params[size_t(i)] = begun.empty() ? &current : &begun.back();
    }
    obs_block(rows, count, hinv.data() + i1 * cols + i1, cols, w1.data(), err.data(), losses.data(),
              [&](int64_t r, int64_t i, float x) {
                const GroupParams& p = *params[size_t(i)];
                const float code = quantize_code(x, p.scale[size_t(r)], p.zero[size_t(r)], maxq);
                const float v = p.scale[size_t(r)] * (code - p.zero[size_t(r)]);
                codes[r * cols + i1 + i] = uint8_t(code);
                q[r * cols + i1 + i] = v;
                return v;
              });
    if (!begun.empty()) current = std::move(begun.back());
    obs_block_update(rows, cols, i1, i2, err.data(), hinv.data(), w);
  }
  for (double l : losses) result.loss += l;

  if (options.act_order) {
    Tensor unpermuted = Tensor::uninitialized(Shape{rows, cols}, DType::f32);
    Tensor unpermuted_codes = Tensor::uninitialized(Shape{rows, cols}, DType::u8);
    float* u = unpermuted.mutable_data<float>();
    uint8_t* uc = unpermuted_codes.mutable_data<uint8_t>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        u[r * cols + perm[size_t(j)]] = q[r * cols + j];
        uc[r * cols + perm[size_t(j)]] = codes[r * cols + j];
      }
    q_tensor = unpermuted;
    integers.codes = unpermuted_codes;
  }
  result.weight = q_tensor;
  if (contiguous_groups) result.integers = integers;
  return result;
}

}  // namespace shrink::compress
