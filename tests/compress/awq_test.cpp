// AWQ and salient-channel protection: the scales' normalisation, the clipping search's error
// (checked against the error computed directly from the inputs), the folding that leaves the
// f32 model unchanged (RMSNorm, v_proj under grouped attention, up_proj), AWQ beating RTN on a
// model with outlier channels, and the mixed-precision Int4Linear.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "compress/llm_test_models.h"
#include "shrink/compress/awq.h"
#include "shrink/compress/llm_quantize.h"
#include "shrink/core/error.h"
#include "shrink/core/rng.h"
#include "shrink/io/gguf_writer.h"
#include "shrink/nn/execute.h"
#include "test_support.h"

namespace shrink::compress {
namespace {
using namespace shrink::testing;

Tensor random_matrix(int64_t rows, int64_t cols, uint64_t seed, float scale = 1.f) {
  Rng rng(seed);
  Tensor t = Tensor::uninitialized(Shape{rows, cols}, DType::f32);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = scale * rng.normal();
  return t;
}

TEST(Awq, ScalesAreNormalisedAndAlphaZeroIsPlainRtn) {
  std::vector<float> magnitude = {0.5f, 2.f, 8.f, 0.f};
  std::vector<float> s = awq_scales(magnitude, 0.5);
  float hi = *std::max_element(s.begin(), s.end()), lo = *std::min_element(s.begin(), s.end());
  EXPECT_NEAR(hi * lo, 1.f, 1e-5f);
  EXPECT_NEAR(s[2] / s[1], 2.f, 1e-5f);   // 8^0.5 / 2^0.5
  EXPECT_NEAR(s[3] / s[1], 1e-4f / std::sqrt(2.f), 1e-7f);  // a dead channel clamps at 1e-4
  for (float v : awq_scales(magnitude, 0.0)) EXPECT_EQ(v, 1.f);

  Tensor w = random_matrix(8, 64, 1);
  WeightOnlyConfig cfg{4, 32, false};
  std::vector<float> ones(64, 1.f);
  Tensor a = awq_scaled_quantize(w, ones, cfg), b = rtn_quantize(w, cfg);
  EXPECT_EQ(squared_distance(a, b), 0.0);
}

TEST(Awq, ClippingErrorMatchesTheDirectComputationAndNeverGrows) {
  const int64_t rows = 6, cols = 96, n = 40;
  Tensor w = random_matrix(rows, cols, 2);
  w.mutable_data<float>()[5] = 9.f;  // one outlier weight: clipping its group pays off
  Tensor x = random_matrix(n, cols, 3);
  WeightOnlyConfig cfg{3, 32, false};
  AwqClipResult r = awq_clip(w, x, cfg);
  EXPECT_LE(r.loss, r.loss_unclipped);
  for (int64_t i = 0; i < w.numel(); ++i) EXPECT_LE(std::fabs(r.weight.data<float>()[i]), std::fabs(w.data<float>()[i]));
  EXPECT_LT(std::fabs(r.weight.data<float>()[5]), 9.f);
  // The error of the clipped-then-quantized weights, group by group, straight from the tokens.
  Tensor q = rtn_quantize(r.weight, cfg);
  double direct = 0;
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t g = 0; g < cols; g += 32)
      for (int64_t t = 0; t < n; ++t) {
        double dot = 0;
        for (int64_t c = g; c < g + 32; ++c)
          dot += double(x.data<float>()[t * cols + c]) * (q.data<float>()[row * cols + c] - w.data<float>()[row * cols + c]);
        direct += dot * dot / double(n);
      }
  EXPECT_NEAR(r.loss, direct, 1e-3 * direct);
  EXPECT_THROW(awq_clip(w, random_matrix(4, 32, 4), cfg), UsageError);
}

// The node range, input value and Linear nodes of block `layer` of a Llama graph.
struct BlockRange {
  size_t first = 0, last = 0;
  int input = -1;
  std::vector<size_t> linears;
};
BlockRange block_of(const nn::Graph& g, int layer) {
  BlockRange b;
  const std::string prefix = "model.layers." + std::to_string(layer) + ".";
  bool inside = false;
  for (size_t n = 0; n < g.nodes().size(); ++n) {
    bool match = g.nodes()[n].name.starts_with(prefix);
    if (match && !inside) b.first = n, b.input = g.nodes()[n].inputs[0];
    if (match) b.last = n + 1;
    if (match && g.nodes()[n].kind == "Linear") b.linears.push_back(n);
    inside = match;
  }
  return b;
}

TEST(Awq, FoldedScalesLeaveTheFloatModelUnchanged) {
  io::LanguageModel lm = tiny_llama(5, 3);
  auto calib = random_windows(4, 16, 1);
  Tensor before = logits(lm.graph, calib);
  BlockRange b = block_of(lm.graph, 0);
  Tensor tokens = Tensor::uninitialized(Shape{4, 16}, DType::i64);
  for (int64_t i = 0; i < 64; ++i) tokens.mutable_data<int64_t>()[i] = calib[size_t(i / 16)][size_t(i % 16)];
  Tensor hidden = nn::forward_segment(lm.graph, 0, b.first, {{lm.graph.inputs()[0], tokens}},
                                      std::span<const int>(&b.input, 1)).at(0);
  AwqOptions o;
  o.clip = false;
  std::vector<AwqGroupReport> groups;
  awq_block(lm.graph, b.first, b.last, b.input, std::span<const Tensor>(&hidden, 1), b.linears, {4, 32, false}, o,
            &groups, nullptr);
  ASSERT_EQ(groups.size(), 4u);
  EXPECT_EQ(groups[0].folded_into, "model.layers.0.input_layernorm");
  EXPECT_EQ(groups[1].folded_into, "model.layers.0.self_attn.v_proj");  // 4 query heads share 2 kv heads
  EXPECT_EQ(groups[2].folded_into, "model.layers.0.post_attention_layernorm");
  EXPECT_EQ(groups[3].folded_into, "model.layers.0.mlp.up_proj");
  int scaled = 0;
  for (const auto& g : groups) {
    EXPECT_LE(g.loss, g.loss_rtn) << g.layers;  // alpha = 0 is a candidate
    scaled += g.alpha > 0;
  }
  EXPECT_GT(scaled, 0);  // the outlier channels made some scaling worth it
  Tensor after = logits(lm.graph, calib);
  double scale = 0;
  for (int64_t i = 0; i < before.numel(); ++i) scale = std::max(scale, std::fabs(double(before.data<float>()[i])));
  EXPECT_LT(std::sqrt(squared_distance(before, after) / double(before.numel())), 1e-5 * scale);
}

TEST(Awq, BeatsRtnOnAModelWithOutlierChannels) {
  auto calib = random_windows(8, 32, 2);
  io::LanguageModel f32 = tiny_llama(6, 3), rtn = tiny_llama(6, 3), awq = tiny_llama(6, 3);
  Tensor reference = logits(f32.graph, calib);
  LlmQuantizeOptions o;
  o.quiet = true;
  o.weights = {3, 32, false};
  o.method = "rtn";
  quantize_language_model(rtn, {}, o);
  o.method = "awq";
  o.batch = 3;
  LlmQuantizeReport r = quantize_language_model(awq, calib, o);
  EXPECT_EQ(r.awq_groups.size(), 8u);
  EXPECT_EQ(r.layers.size(), 14u);
  double e_rtn = squared_distance(logits(rtn.graph, calib), reference);
  double e_awq = squared_distance(logits(awq.graph, calib), reference);
  EXPECT_LT(e_awq, 0.8 * e_rtn) << "rtn " << e_rtn << " awq " << e_awq;
  EXPECT_EQ(awq.graph.node("model.layers.1.mlp.down_proj").attrs["weight_quant"]["method"], "awq");
}

TEST(SalientChannels, KeptInF16AndRunAsAMixedPrecisionInt4Layer) {
  auto calib = random_windows(6, 32, 3);
  io::LanguageModel f32 = tiny_llama(7, 3), rtn = tiny_llama(7, 3), salient = tiny_llama(7, 3), plain = tiny_llama(7, 3);
  Tensor reference = logits(f32.graph, calib);
  LlmQuantizeOptions o;
  o.quiet = true;
  o.method = "rtn";
  o.weights = {4, 32, false};
  quantize_language_model(rtn, {}, o);
  o.keep_salient = 0.05;  // 4 of 64 inputs, 5 of 96
  LlmQuantizeReport r = quantize_language_model(salient, calib, o);
  EXPECT_EQ(r.salient_weights, 2 * (4 * (64 + 32 + 32) + 4 * 64 + 4 * 2 * 96 + 5 * 64));
  const nn::Node& q = salient.graph.node("model.layers.0.self_attn.q_proj");
  ASSERT_EQ(q.kind, "Int4Linear");
  const Tensor& columns = q.param("salient_columns").value;
  ASSERT_EQ(columns.numel(), 4);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(columns.data<int32_t>()[i], i);  // the outlier channels
  double e_rtn = squared_distance(logits(rtn.graph, calib), reference);
  double e_salient = squared_distance(logits(salient.graph, calib), reference);
  EXPECT_LT(e_salient, 0.8 * e_rtn) << "rtn " << e_rtn << " salient " << e_salient;
  // The packed mixed-precision layers compute what their dequantized weights compute.
  o.pack_int4 = false;
  quantize_language_model(plain, calib, o);
  Tensor a = logits(salient.graph, calib), b = logits(plain.graph, calib);
  double scale = 0;
  for (int64_t i = 0; i < b.numel(); ++i) scale = std::max(scale, std::fabs(double(b.data<float>()[i])));
  EXPECT_LT(std::sqrt(squared_distance(a, b) / double(a.numel())), 2e-3 * scale);
  auto one = random_windows(1, 2, 4);  // the decoding kernel path
  Tensor c = logits(salient.graph, one), d = logits(plain.graph, one);
  EXPECT_LT(std::sqrt(squared_distance(c, d) / double(c.numel())), 2e-2 * scale);
  // GGUF has no such tensor: a clear refusal, no file.
  std::string path = ::testing::TempDir() + "/salient.gguf";
  std::remove(path.c_str());
  EXPECT_THROW(export_llama_gguf(salient, path), UnsupportedError);
  EXPECT_FALSE(std::ifstream(path).good());
  // A corrupt column index is refused when the layer runs.
  salient.graph.node("model.layers.0.self_attn.q_proj").param("salient_columns").value.mutable_data<int32_t>()[0] = 64;
  EXPECT_THROW(logits(salient.graph, calib), Error);
}

TEST(SalientChannels, BadFractionsAndMethodsAreRefused) {
  io::LanguageModel lm = tiny_llama(8);
  auto calib = random_windows(2, 16, 5);
  LlmQuantizeOptions o;
  o.quiet = true;
  o.method = "rtn";
  o.keep_salient = 1.0;
  EXPECT_THROW(quantize_language_model(lm, calib, o), UsageError);
  o.keep_salient = -0.1;
  EXPECT_THROW(quantize_language_model(lm, calib, o), UsageError);
  o.keep_salient = 0.01;
  EXPECT_THROW(quantize_language_model(lm, {}, o), UsageError);  // needs calibration
  o.method = "gptq";
  EXPECT_THROW(quantize_language_model(lm, calib, o), UsageError);
  o.method = "awq";
  o.keep_salient = 0;
  EXPECT_THROW(quantize_language_model(lm, {}, o), UsageError);
}

}  // namespace
}  // namespace shrink::compress
