// GPTQ against the PyTorch reference (tests/fixtures/gptq_reference.safetensors, written by
// tools/gptq_reference.py), and its properties: lower output error than RTN, dead inputs,
// damping retries, bad options.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "shrink/compress/gptq.h"
#include "shrink/core/error.h"
#include "shrink/core/rng.h"
#include "shrink/io/safetensors.h"
#include "test_support.h"

namespace shrink::compress {
namespace {

// ||X W^T - X Q^T||^2: the layer-output error GPTQ minimises.
double output_error(const Tensor& x, const Tensor& w, const Tensor& q) {
  int64_t n = x.shape()[0], k = x.shape()[1], rows = w.shape()[0];
  const float *xd = x.data<float>(), *wd = w.data<float>(), *qd = q.data<float>();
  double total = 0;
  for (int64_t s = 0; s < n; ++s)
    for (int64_t r = 0; r < rows; ++r) {
      double e = 0;
      for (int64_t j = 0; j < k; ++j) e += double(xd[s * k + j]) * (wd[r * k + j] - qd[r * k + j]);
      total += e * e;
    }
  return total;
}

TEST(Gptq, MatchesThePyTorchReference) {
  SafetensorsFile file = SafetensorsFile::open(testing::fixture_path("gptq_reference.safetensors"));
  const Tensor w = file.tensor("W").contiguous(), x = file.tensor("X").contiguous();
  HessianAccumulator acc(x.shape()[1]);
  acc.add(x.slice(0, 0, 250));  // in two chunks: the sum does not depend on the batching
  acc.add(x.slice(0, 250, x.shape()[0]));
  const Tensor h = acc.hessian();
  std::string cases_json;
  for (const auto& [k, v] : file.metadata())
    if (k == "cases") cases_json = v;
  const auto cases = nlohmann::json::parse(cases_json);
  ASSERT_EQ(cases.size(), 4u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.dump());
    WeightOnlyConfig config{c.value("bits", 4), c.value("groupsize", int64_t(128)), c.value("sym", false)};
    GptqOptions options;
    options.act_order = c.value("actorder", false);
    options.static_groups = c.value("static_groups", false);
    GptqResult r = gptq_quantize(w, h, config, options);
    EXPECT_EQ(r.dead_columns, 1);
    const Tensor want = file.tensor("Q." + c["name"].get<std::string>()).contiguous();
    int64_t same = 0, n = want.numel();
    for (int64_t i = 0; i < n; ++i)
      if (std::fabs(r.weight.data<float>()[i] - want.data<float>()[i]) <= 1e-5f * (1 + std::fabs(want.data<float>()[i])))
        ++same;
    // Float rounding (the inverse's factor computed another way here: from H reversed, blocked)
    // may move a rare value across a rounding boundary, after which the error feedback differs a
    // little.
    EXPECT_GE(double(same) / double(n), 0.99) << same << " of " << n << " equal";
    EXPECT_LT(output_error(x, w, r.weight), 1.02 * output_error(x, w, want));
  }
}

TEST(Gptq, BeatsRoundToNearestOnTheLayerOutput) {
  SafetensorsFile file = SafetensorsFile::open(testing::fixture_path("gptq_reference.safetensors"));
  const Tensor w = file.tensor("W").contiguous(), x = file.tensor("X").contiguous();
  HessianAccumulator acc(x.shape()[1]);
  acc.add(x);
  for (int bits : {3, 4}) {
    WeightOnlyConfig config{bits, 64, false};
    double rtn = output_error(x, w, rtn_quantize(w, config));
    double gptq = output_error(x, w, gptq_quantize(w, acc.hessian(), config).weight);
    EXPECT_LT(gptq, 0.8 * rtn) << bits << " bits";
    GptqOptions act;
    act.act_order = true;
    EXPECT_LT(output_error(x, w, gptq_quantize(w, acc.hessian(), config, act).weight), rtn);
  }
}

TEST(Gptq, RtnValuesLieOnTheGroupGrid) {
  Rng rng(3);
  Tensor w = Tensor::uninitialized(Shape{4, 64}, DType::f32);
  for (int64_t i = 0; i < w.numel(); ++i) w.mutable_data<float>()[i] = rng.normal();
  Tensor q = rtn_quantize(w, {3, 32, false});
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t g = 0; g < 2; ++g) {
      std::vector<float> distinct;
      for (int64_t j = 0; j < 32; ++j) {
        float v = q.data<float>()[r * 64 + g * 32 + j];
        if (std::find(distinct.begin(), distinct.end(), v) == distinct.end()) distinct.push_back(v);
      }
      EXPECT_LE(distinct.size(), 8u);  // 3 bits
    }
}

TEST(Gptq, RetriesWithMoreDampingWhenCholeskyFails) {
  Tensor h = Tensor::uninitialized(Shape{2, 2}, DType::f32);
  float values[] = {1, 2, 2, 1};  // eigenvalues -1 and 3
  std::copy(values, values + 4, h.mutable_data<float>());
  Tensor w = Tensor::uninitialized(Shape{1, 2}, DType::f32);
  w.mutable_data<float>()[0] = 0.5f, w.mutable_data<float>()[1] = -0.25f;
  GptqResult r = gptq_quantize(w, h, {4, 0, false});
  EXPECT_GE(r.retries, 2);
  EXPECT_GT(r.damp, 0.5);
  for (float& v : values) v = -1;
  std::copy(values, values + 4, h.mutable_data<float>());
  EXPECT_THROW(gptq_quantize(w, h, {4, 0, false}), Error);  // never positive definite
}

// U is the upper Cholesky factor of the damped Hessian's inverse: upper triangular, positive on its
// diagonal, and U^T U (H + damp mean(diag H) I) = I, for widths of one, odd and above LAPACK's
// block size (the factor is computed from H reversed, so every position of it is checked).
TEST(Gptq, InverseHessianFactorIsTheUpperCholeskyFactorOfTheInverse) {
  Rng rng(11);
  for (int64_t n : {1, 2, 37, 150}) {
    SCOPED_TRACE(n);
    const int64_t samples = 3 * n;
    std::vector<double> x(size_t(samples * n)), h(size_t(n * n), 0.0);
    for (double& v : x) v = rng.normal(0.f, 1.f);
    for (int64_t s = 0; s < samples; ++s)  // correlated inputs: each adds half its neighbour
      for (int64_t i = n - 1; i > 0; --i) x[size_t(s * n + i)] += 0.5 * x[size_t(s * n + i - 1)];
    for (int64_t s = 0; s < samples; ++s)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) h[size_t(i * n + j)] += 2.0 / double(samples) * x[size_t(s * n + i)] * x[size_t(s * n + j)];
    for (double& v : h) v = double(float(v));  // the factor takes the f32 Hessian
    const InverseHessianFactor f = inverse_hessian_factor(std::vector<float>(h.begin(), h.end()), n, 0.01);
    EXPECT_EQ(f.retries, 0);
    ASSERT_EQ(f.upper.size(), size_t(n * n));
    double mean_diag = 0;
    for (int64_t i = 0; i < n; ++i) mean_diag += h[size_t(i * n + i)] / double(n);
    for (int64_t i = 0; i < n; ++i) h[size_t(i * n + i)] += 0.01 * mean_diag;
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_GT(f.upper[size_t(i * n + i)], 0.f);
      for (int64_t j = 0; j < i; ++j) ASSERT_EQ(f.upper[size_t(i * n + j)], 0.f) << i << ", " << j;
    }
    std::vector<double> inverse(size_t(n * n), 0.0);  // U^T U
    for (int64_t k = 0; k < n; ++k)
      for (int64_t i = k; i < n; ++i)
        for (int64_t j = k; j < n; ++j)
          inverse[size_t(i * n + j)] += double(f.upper[size_t(k * n + i)]) * f.upper[size_t(k * n + j)];
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double e = 0;
        for (int64_t k = 0; k < n; ++k) e += inverse[size_t(i * n + k)] * h[size_t(k * n + j)];
        worst = std::max(worst, std::fabs(e - (i == j ? 1.0 : 0.0)));
      }
    EXPECT_LT(worst, 1e-3);
  }
}

// The accumulator multiplies only the blocks of 64 on and above the diagonal and mirrors them:
// every entry of 2/n X^T X, for widths below, at and across block edges (an odd block count pairs
// the middle block with itself), summed over batches.
TEST(Gptq, HessianEqualsTwiceTheMeanOuterProduct) {
  Rng rng(5);
  for (int64_t dim : {1, 63, 64, 150, 257}) {
    SCOPED_TRACE(dim);
    Tensor x = Tensor::zeros(Shape{37, dim}, DType::f32);
    float* xd = x.mutable_data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) xd[i] = rng.normal(0.f, 1.f);
    HessianAccumulator acc(dim);
    acc.add(x.slice(0, 0, 20));
    acc.add(x.slice(0, 20, 37).reshape(Shape{1, 17, dim}));
    const Tensor h = acc.hessian();
    for (int64_t i = 0; i < dim; ++i)
      for (int64_t j = 0; j < dim; ++j) {
        double expected = 0;
        for (int64_t r = 0; r < 37; ++r) expected += double(xd[r * dim + i]) * xd[r * dim + j];
        expected *= 2.0 / 37;
        ASSERT_NEAR(h.data<float>()[i * dim + j], expected, 1e-4 * (1 + std::fabs(expected))) << i << "," << j;
      }
  }
}

// Static groups when the width is not a multiple of the group (SmolLM2's 576 with group 128): the
// last, shorter group takes its range from its own columns, not from the next row's first ones
// (which the ASan job would also flag past the last row).
TEST(Gptq, StaticGroupsOfAShorterLastGroupUseOnlyTheirColumns) {
  Tensor w = Tensor::zeros(Shape{2, 48}, DType::f32), h = Tensor::zeros(Shape{48, 48}, DType::f32);
  float* wd = w.mutable_data<float>();
  Rng rng(8);
  for (int64_t j = 0; j < 48; ++j) wd[j] = rng.uniform(-1.f, 1.f);
  for (int64_t j = 0; j < 48; ++j) wd[48 + j] = j < 16 ? 1000.f : rng.uniform(-1.f, 1.f);
  for (int64_t j = 0; j < 48; ++j) h.mutable_data<float>()[j * 48 + j] = 1.f;  // no error feedback: GPTQ = RTN
  const GptqResult r = gptq_quantize(w, h, {4, 32, false}, {.static_groups = true});
  float lo = 0.f, hi = 0.f;  // the last group of row 0, its range widened to include 0
  for (int64_t j = 32; j < 48; ++j) lo = std::min(lo, wd[j]), hi = std::max(hi, wd[j]);
  for (int64_t j = 32; j < 48; ++j)
    EXPECT_LE(std::fabs(r.weight.data<float>()[j] - wd[j]), (hi - lo) / 15 * 0.51f + 1e-6f) << j;
}

TEST(Gptq, BadOptionsAreUsageErrors) {
  Tensor w = Tensor::zeros(Shape{2, 48}, DType::f32), h = Tensor::zeros(Shape{48, 48}, DType::f32);
  EXPECT_NO_THROW(gptq_quantize(w, h, {4, 32, false}));  // a shorter last group, as the reference slices
  EXPECT_THROW(gptq_quantize(w, h, {9, 0, false}), UsageError);
  EXPECT_THROW(gptq_quantize(w, Tensor::zeros(Shape{4, 4}, DType::f32), {4, 0, false}), UsageError);
  EXPECT_THROW(rtn_quantize(w, {1, 16, false}), UsageError);
  HessianAccumulator acc(48);
  EXPECT_THROW(acc.add(Tensor::zeros(Shape{3, 47}, DType::f32)), UsageError);
}

}  // namespace
}  // namespace shrink::compress
