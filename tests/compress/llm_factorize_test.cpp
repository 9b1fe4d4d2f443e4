// Activation-aware low-rank factorization: SVD-LLM's truncation error on the calibration data is
// exactly the dropped whitened singular values and beats plain SVD on those inputs; ASVD with
// alpha 0 is plain SVD; full rank reconstructs; the block-by-block driver on a small Llama keeps
// the model running, shrinks it and beats plain SVD; bad settings are refused.
#include <gtest/gtest.h>

#include "compress/llm_test_models.h"
#include "nn/nn_test_support.h"
#include "shrink/compress/awq.h"
#include "shrink/compress/gptq.h"
#include "shrink/compress/llm_factorize.h"
#include "shrink/kernels/openblas.h"

namespace shrink::testing {
namespace {

#define REQUIRE_LAPACK() \
  if (!openblas().sgesdd || !openblas().dpotrf || !openblas().dgemm) GTEST_SKIP() << "no LAPACK on this machine"

// Inputs (tokens, dim) with very unequal, correlated channels, as transformer activations have.
Tensor correlated_inputs(int64_t tokens, int64_t dim, uint64_t seed) {
  Rng rng(seed);
  Tensor base = random_tensor(Shape{tokens, dim}, rng);
  Tensor x = Tensor::uninitialized(Shape{tokens, dim}, DType::f32);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < dim; ++j) {
      const float* b = base.data<float>() + t * dim;
      float scale = j % 7 == 0 ? 6.f : 1.f;
      x.mutable_data<float>()[t * dim + j] = scale * (b[j] + 0.8f * b[(j + 1) % dim]);
    }
  return x;
}

// ||(W - second first) X^T||^2 over the rows of x.
double output_error(const Tensor& w, const compress::LowRankFactors& f, const Tensor& x) {
  const int64_t rows = w.shape()[0], cols = w.shape()[1], r = f.rank, tokens = x.shape()[0];
  std::vector<double> approx(static_cast<size_t>(rows * cols), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < r; ++k)
      for (int64_t j = 0; j < cols; ++j)
        approx[size_t(i * cols + j)] += double(f.second.data<float>()[i * r + k]) * f.first.data<float>()[k * cols + j];
  double error = 0;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < rows; ++i) {
      double e = 0;
      for (int64_t j = 0; j < cols; ++j)
        e += (double(w.data<float>()[i * cols + j]) - approx[size_t(i * cols + j)]) * x.data<float>()[t * cols + j];
      error += e * e;
    }
  return error;
}

TEST(SvdLlm, TruncationErrorIsTheDroppedWhitenedEnergyAndBeatsPlainSvd) {
  REQUIRE_LAPACK();
  Rng rng(1);
  const int64_t rows = 24, cols = 32, rank = 8;
  Tensor w = random_tensor(Shape{rows, cols}, rng);
  Tensor x = correlated_inputs(400, cols, 2);
  compress::HessianAccumulator h(cols);
  h.add(x);
  compress::InputStatistics stats{h.hessian(), {}};
  compress::FactorizeConfig config;
  config.rank = rank, config.method = "svd-llm", config.damp = 1e-7;
  compress::LowRankFactors whitened = compress::factor_weight(w, config, &stats);
  ASSERT_EQ(whitened.rank, rank);
  ASSERT_EQ(whitened.first.shape(), (Shape{rank, cols}));
  ASSERT_EQ(whitened.second.shape(), (Shape{rows, rank}));
  // ||(W - W')X^T||^2 = the dropped part of the spectrum of W L, and ||W X^T||^2 all of it.
  config.rank = cols < rows ? cols : rows;
  compress::LowRankFactors full = compress::factor_weight(w, config, &stats);
  EXPECT_NEAR(full.energy_kept, 1.0, 1e-9);
  const compress::LowRankFactors nothing{Tensor::zeros(Shape{1, cols}, DType::f32),
                                         Tensor::zeros(Shape{rows, 1}, DType::f32), 1, 0, 0};
  const double total = output_error(w, nothing, x);  // ||W X^T||^2
  EXPECT_LT(output_error(w, full, x), 1e-6 * total) << "full rank reconstructs the layer's outputs";
  const double e_whitened = output_error(w, whitened, x);
  EXPECT_NEAR(e_whitened / total, 1.0 - whitened.energy_kept, 1e-3) << "the error is the dropped whitened energy";

  compress::FactorizeConfig plain;
  plain.rank = rank;
  compress::LowRankFactors p = compress::factor_weight(w, plain, nullptr);
  const double e_plain = output_error(w, p, x);
  EXPECT_LT(e_whitened, 0.8 * e_plain) << "whitening must beat plain SVD on the calibration inputs";

  compress::FactorizeConfig asvd;
  asvd.rank = rank, asvd.method = "asvd";
  compress::ChannelMagnitude m(cols);
  m.add(x);
  compress::InputStatistics magnitudes{{}, m.mean()};
  const double e_asvd = output_error(w, compress::factor_weight(w, asvd, &magnitudes), x);
  EXPECT_LT(e_asvd, e_plain) << "scaling by mean |x| helps on inputs with a few large channels";
  EXPECT_GE(e_asvd, e_whitened * (1 - 1e-6)) << "SVD-LLM is optimal for this error";
  asvd.asvd_alpha = 0;
  compress::LowRankFactors same = compress::factor_weight(w, asvd, &magnitudes);
  EXPECT_NEAR(output_error(w, same, x), e_plain, 1e-6 * e_plain) << "alpha 0 is plain SVD";
}

TEST(SvdLlm, SingularGramMatricesAreDamped) {
  REQUIRE_LAPACK();
  Rng rng(3);
  const int64_t cols = 16;
  Tensor w = random_tensor(Shape{12, cols}, rng);
  Tensor x = random_tensor(Shape{40, cols}, rng);
  for (int64_t t = 0; t < 40; ++t) x.mutable_data<float>()[t * cols + 5] = 0.f;  // a dead input
  compress::HessianAccumulator h(cols);
  h.add(x);
  compress::InputStatistics stats{h.hessian(), {}};
  compress::FactorizeConfig config;
  config.rank = 4, config.method = "svd-llm";
  compress::LowRankFactors f = compress::factor_weight(w, config, &stats);
  EXPECT_GT(f.damp, 0.0);
  for (int64_t i = 0; i < f.first.numel(); ++i) ASSERT_TRUE(std::isfinite(f.first.data<float>()[i]));
}

TEST(LlmFactorize, BlockByBlockOnASmallLlama) {
  REQUIRE_LAPACK();
  auto calibration = random_windows(6, 24, 7);
  auto held_out = random_windows(3, 24, 8);
  io::LanguageModel dense = tiny_llama(11, 4);
  const Tensor reference = logits(dense.graph, held_out).clone();
  const int64_t params = dense.graph.parameter_count();
  double distance[2] = {};
  int i = 0;
  for (const char* method : {"svd", "svd-llm"}) {
    io::LanguageModel lm = tiny_llama(11, 4);
    compress::LlmFactorizeOptions o;
    o.config.ratio = 0.6, o.config.method = method, o.quiet = true;
    compress::LlmFactorizeReport r = compress::factorize_language_model(lm, calibration, o);
    EXPECT_EQ(r.layers.size(), 14u) << "7 Linear layers in each of the 2 blocks";
    for (const auto& l : r.layers) EXPECT_TRUE(l.factored) << l.node << ": " << l.reason;
    EXPECT_LT(r.params_after, params);
    EXPECT_EQ(r.params_after, lm.graph.parameter_count());
    EXPECT_GE(lm.graph.node_index("model.layers.1.mlp.down_proj.low_rank"), 0);
    EXPECT_EQ(r.calibration_tokens, std::string(method) == "svd" ? 0 : 6 * 24);
    distance[i++] = squared_distance(logits(lm.graph, held_out), reference);
  }
  EXPECT_GT(distance[0], 0.0);
  EXPECT_LT(distance[1], 0.7 * distance[0]) << "SVD-LLM must beat plain SVD at the same ratio";
}

TEST(LlmFactorize, BadSettingsAreRefused) {
  REQUIRE_LAPACK();
  io::LanguageModel lm = tiny_llama(12);
  compress::LlmFactorizeOptions o;
  o.quiet = true;
  EXPECT_THROW(compress::factorize_language_model(lm, {}, o), UsageError) << "no criterion";
  o.config.ratio = 0.5;
  o.config.method = "svd-llm";
  EXPECT_THROW(compress::factorize_language_model(lm, {}, o), UsageError) << "svd-llm without calibration";
  o.config.ratio = 0, o.config.rank = 1000, o.config.method = "svd";
  EXPECT_THROW(compress::factorize_language_model(lm, {}, o), UsageError) << "rank beyond every matrix";
  o.config.rank = 0, o.config.ratio = 0.5;
  o.config.method = "pca";
  EXPECT_THROW(compress::factorize_language_model(lm, random_windows(2, 8, 1), o), UsageError);
  o.config.method = "svd-llm";
  o.config.damp = 0;
  EXPECT_THROW(compress::factorize_language_model(lm, random_windows(2, 8, 1), o), UsageError);
  compress::FactorizeConfig c;
  c.ratio = 0.5, c.method = "asvd";
  EXPECT_THROW(compress::factorize(lm.graph, c), UsageError) << "the graph-only entry point has no calibration";
  Rng rng(1);
  EXPECT_THROW(compress::factor_weight(random_tensor(Shape{4, 4}, rng), c, nullptr), UsageError);
}

}  // namespace
}  // namespace shrink::testing
