// One-shot LLM pruning: Wanda's rule on a hand example, SparseGPT's N:M and unstructured masks,
// SparseGPT beating Wanda and magnitude on the layer-output error when inputs are uneven, and the
// block-by-block driver on a small random Llama (lm_head untouched, bad targets refused).
#include <gtest/gtest.h>

#include <cmath>

#include "compress/llm_test_models.h"
#include "shrink/compress/llm_prune.h"
#include "shrink/core/error.h"
#include "shrink/core/rng.h"
#include "test_support.h"

namespace shrink::compress {
namespace {
using namespace shrink::testing;

Tensor matrix(int64_t rows, int64_t cols, const std::vector<float>& v) {
  Tensor t = Tensor::uninitialized(Shape{rows, cols}, DType::f32);
  std::copy(v.begin(), v.end(), t.mutable_data<float>());
  return t;
}

TEST(Wanda, PrunesTheLowestWeightTimesInputNormPerRow) {
  // Row 0: scores |w| * norm = 1*4, 2*1, 3*1, 0.5*8 -> 4, 2, 3, 4: drop columns 1 and 2.
  Tensor w = matrix(2, 4, {1, -2, 3, 0.5f, 0.1f, 1, 1, 1});
  std::vector<float> norms = {4, 1, 1, 8};
  Tensor p = wanda_prune(w, norms, {0.5});
  std::vector<float> expect = {1, 0, 0, 0.5f, 0, 0, 1, 1};  // row 1: 0.4, 1, 1, 8 -> ties by position
  for (int i = 0; i < 8; ++i) EXPECT_EQ(p.data<float>()[i], expect[size_t(i)]) << i;
  Tensor q = wanda_prune(w, norms, {0, 1, 2});  // 1:2 — keep one of each pair
  std::vector<float> expect_nm = {1, 0, 0, 0.5f, 0, 1, 0, 1};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(q.data<float>()[i], expect_nm[size_t(i)]) << i;
}

struct Layer {
  Tensor w, x, h;
};
// Inputs with very uneven channel scales (as in LLMs), and their Hessian 2/n X^T X.
Layer uneven_layer(int64_t rows, int64_t cols, int64_t n, uint64_t seed) {
  Rng rng(seed);
  Layer l{Tensor::uninitialized(Shape{rows, cols}, DType::f32), Tensor::uninitialized(Shape{n, cols}, DType::f32),
          Tensor::zeros(Shape{cols, cols}, DType::f32)};
  for (int64_t i = 0; i < l.w.numel(); ++i) l.w.mutable_data<float>()[i] = rng.normal();
  for (int64_t t = 0; t < n; ++t) {
    float shared = rng.normal();
    for (int64_t j = 0; j < cols; ++j)
      l.x.mutable_data<float>()[t * cols + j] = (j % 7 == 0 ? 6.f : 1.f) * (rng.normal() + 0.5f * shared);
  }
  HessianAccumulator acc(cols);
  acc.add(l.x);
  l.h = acc.hessian();
  return l;
}

double output_error(const Layer& l, const Tensor& pruned) {
  const int64_t rows = l.w.shape()[0], cols = l.w.shape()[1], n = l.x.shape()[0];
  double e = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double d = 0;
      for (int64_t j = 0; j < cols; ++j)
        d += double(l.x.data<float>()[t * cols + j]) * (pruned.data<float>()[r * cols + j] - l.w.data<float>()[r * cols + j]);
      e += d * d;
    }
  return e;
}

int64_t zeros(const Tensor& t) {
  int64_t z = 0;
  for (int64_t i = 0; i < t.numel(); ++i) z += t.data<float>()[i] == 0.f;
  return z;
}

TEST(SparseGpt, MasksHaveTheAskedShapeAndBeatWandaAndMagnitude) {
  Layer l = uneven_layer(24, 64, 256, 1);
  std::vector<float> norms(64);
  for (int64_t j = 0; j < 64; ++j) {
    double s = 0;
    for (int64_t t = 0; t < 256; ++t) s += std::pow(double(l.x.data<float>()[t * 64 + j]), 2);
    norms[size_t(j)] = float(std::sqrt(s));
  }
  std::vector<float> ones(64, 1.f);
  for (SparsityTarget target : {SparsityTarget{0.5}, SparsityTarget{0, 2, 4}}) {
    SCOPED_TRACE(target.describe());
    SparseGptOptions options;
    options.block = 32;  // two lazy blocks
    SparseGptResult s = sparsegpt_prune(l.w, l.h, target, options);
    Tensor wanda = wanda_prune(l.w, norms, target), magnitude = wanda_prune(l.w, ones, target);
    EXPECT_GE(zeros(s.weight), 24 * 32);
    if (target.m > 0)
      for (int64_t r = 0; r < 24; ++r)
        for (int64_t g = 0; g < 64; g += 4) {
          int z = 0;
          for (int64_t j = g; j < g + 4; ++j) z += s.weight.data<float>()[r * 64 + j] == 0.f;
          EXPECT_GE(z, 2) << r << " " << g;
        }
    const double es = output_error(l, s.weight), ew = output_error(l, wanda), em = output_error(l, magnitude);
    EXPECT_LT(es, 0.9 * ew) << "sparsegpt " << es << " wanda " << ew;
    EXPECT_LT(ew, em) << "wanda " << ew << " magnitude " << em;
  }
}

TEST(LlmPrune, BlockByBlockOnASmallLlama) {
  auto calib = random_windows(8, 32, 4);
  io::LanguageModel f32 = tiny_llama(9, 3);
  Tensor reference = logits(f32.graph, calib);
  std::map<std::string, double> error;
  for (const char* method : {"magnitude", "wanda", "sparsegpt"}) {
    SCOPED_TRACE(method);
    io::LanguageModel lm = tiny_llama(9, 3);
    LlmPruneOptions o;
    o.quiet = true;
    o.method = method;
    o.batch = 3;
    LlmPruneReport r = prune_language_model(lm, calib, o);
    EXPECT_EQ(r.layers.size(), 14u);
    EXPECT_NEAR(double(r.zeros) / double(r.weights), 0.5, 0.01);
    EXPECT_EQ(zeros(lm.graph.node("lm_head").param("weight").value), 0);
    EXPECT_EQ(lm.graph.node("model.layers.0.mlp.up_proj").attrs["pruning"]["method"], method);
    error[method] = squared_distance(logits(lm.graph, calib), reference);
  }
  EXPECT_LT(error["sparsegpt"], error["magnitude"]);
  EXPECT_LT(error["wanda"], error["magnitude"]);
}

// 2:4 layers are marked for the sparse kernel, which decoding (a few rows) runs: the logits equal
// those of the same weights run dense (the mark removed).
TEST(LlmPrune, TwoFourLayersDecodeThroughTheSparseKernel) {
  io::LanguageModel lm = tiny_llama(10);
  LlmPruneOptions o;
  o.quiet = true;
  o.method = "magnitude";
  o.target = {0, 2, 4};
  prune_language_model(lm, {}, o);
  int marked = 0;
  for (const nn::Node& n : lm.graph.nodes()) marked += n.attrs.value("sparse_2of4", false);
  EXPECT_EQ(marked, 14);
  auto short_window = random_windows(1, 3, 5);  // 3 rows: the decode path
  const Tensor sparse = logits(lm.graph, short_window).clone();
  for (nn::Node& n : lm.graph.nodes()) n.attrs.erase("sparse_2of4"), n.prepared = nullptr;
  const Tensor dense = logits(lm.graph, short_window);
  ASSERT_EQ(sparse.shape(), dense.shape());
  double norm = 0;
  for (int64_t i = 0; i < dense.numel(); ++i) norm += double(dense.data<float>()[i]) * dense.data<float>()[i];
  EXPECT_GT(norm, 0.0);
  EXPECT_LT(squared_distance(sparse, dense), 1e-10 * norm);
}

TEST(LlmPrune, BadTargetsAndMethodsAreRefused) {
  auto calib = random_windows(2, 16, 5);
  io::LanguageModel lm = tiny_llama(10);
  LlmPruneOptions o;
  o.quiet = true;
  o.target = {1.0};
  EXPECT_THROW(prune_language_model(lm, calib, o), UsageError);
  o.target = {0, 4, 4};
  EXPECT_THROW(prune_language_model(lm, calib, o), UsageError);
  o.target = {0, 2, 5};  // 64 inputs are not groups of 5
  EXPECT_THROW(prune_language_model(lm, calib, o), UsageError);
  o.target = {0.5};
  EXPECT_THROW(prune_language_model(lm, {}, o), UsageError);  // SparseGPT without calibration
  o.method = "obs";
  EXPECT_THROW(prune_language_model(lm, calib, o), UsageError);
}

}  // namespace
}  // namespace shrink::compress
