// Weight-only quantization of a language model, block by block, on a small random Llama: every
// quantized weight lies on its group's grid, GPTQ's model output is closer to f32 than RTN's on
// the calibration data, the excluded head stays f32, and the result saves and loads with its
// tokenizer (tests/io/llm_import_test.cpp checks the round trip).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "shrink/compress/llm_quantize.h"
#include "shrink/io/native_model.h"
#include "shrink/core/error.h"
#include "shrink/core/rng.h"
#include "shrink/nn/decoder.h"
#include "shrink/nn/execute.h"
#include "compress/block_calibration.h"
#include "core/memory_budget.h"
#include "compress/llm_test_models.h"
#include "test_support.h"

namespace shrink::compress {
namespace {
using namespace shrink::testing;

TEST(LlmQuantize, GptqBeatsRtnOnTheModelOutputAndKeepsTheGrid) {
  auto calib = random_windows(16, 32, 5);
  io::LanguageModel f32 = tiny_llama(1), rtn = tiny_llama(1), gptq = tiny_llama(1);
  Tensor reference = logits(f32.graph, calib);
  LlmQuantizeOptions o;
  o.weights = {3, 32, false};  // 3 bits: the weights stay f32 Linear layers
  o.quiet = true;
  o.method = "rtn";
  LlmQuantizeReport r = quantize_language_model(rtn, {}, o);
  EXPECT_EQ(r.layers.size(), 2u * 7u);  // q k v o gate up down per block; lm_head excluded
  o.method = "gptq";
  o.batch = 3;  // batches that do not divide the sample count
  LlmQuantizeReport g = quantize_language_model(gptq, calib, o);
  EXPECT_EQ(g.calibration_tokens, 16 * 32);
  EXPECT_EQ(g.hidden_state_bytes, 16 * 32 * 64 * 4);
  double e_rtn = squared_distance(logits(rtn.graph, calib), reference);
  double e_gptq = squared_distance(logits(gptq.graph, calib), reference);
  EXPECT_LT(e_gptq, 0.8 * e_rtn) << "rtn " << e_rtn << " gptq " << e_gptq;

  for (const auto& node : gptq.graph.nodes()) {
    if (node.kind != "Linear") continue;
    const Tensor& w = node.param("weight").value;
    if (node.name == "lm_head") {
      EXPECT_FALSE(node.attrs.contains("weight_quant"));
      continue;
    }
    ASSERT_TRUE(node.attrs.contains("weight_quant")) << node.name;
    EXPECT_EQ(node.attrs["weight_quant"]["bits"], 3);
    int64_t cols = w.shape()[1];
    for (int64_t r0 = 0; r0 < w.shape()[0]; ++r0)
      for (int64_t g0 = 0; g0 < cols; g0 += 32) {
        std::set<float> distinct(w.data<float>() + r0 * cols + g0, w.data<float>() + r0 * cols + g0 + 32);
        EXPECT_LE(distinct.size(), 8u) << node.name;
      }
  }
}

// Calibration that would hold more hidden states than the machine has left is refused after the
// first batch, with the sizes (SmolLM2 with 100,000 windows of 2,048 tokens had run 78 s and
// filled 23.8 GB before the memory budget refused a block).
TEST(LlmQuantize, CalibrationBeyondTheMachinesMemoryIsRefusedAtTheStart) {
  auto calib = random_windows(16384, 32, 5);  // 8 KB of hidden states a window, 128 MB in all
  io::LanguageModel lm = tiny_llama(1);
  const std::vector<TransformerBlock> blocks = find_transformer_blocks(lm.graph);
  memory_budget::set_available_for_testing(96 << 20);
  try {
    BlockCalibration calibration(lm.graph, calib, 4, blocks[0]);
    ADD_FAILURE() << "calibration started without room for its hidden states";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("hidden states (16384 windows of 32 tokens)"), std::string::npos) << e.what();
  }
  memory_budget::set_available_for_testing(0);
  calib.resize(16);
  BlockCalibration calibration(lm.graph, calib, 4, blocks[0]);
  EXPECT_EQ(calibration.hidden_bytes(), 16 * 32 * 64 * 4);
}

// True-sequential GPTQ in one pass over each block gives exactly what the reference code's way
// gives (AutoGPTQ's true_sequential: for each group of layers, a whole forward pass of the block
// with the groups before it already quantized, hooks collecting the group's inputs), and differs
// from taking every Hessian from the unquantized block.
void expect_one_pass_equals_a_pass_per_group(io::LanguageModel (*make)(uint64_t), uint64_t vocabulary) {
  auto calib = random_windows(6, 16, 8, vocabulary);
  LlmQuantizeOptions o;
  o.quiet = true;
  o.weights = {3, 32, false};
  o.batch = 4;  // two batches, the second short
  io::LanguageModel one_pass = make(5), per_group = make(5), not_sequential = make(5);
  LlmQuantizeReport r = quantize_language_model(one_pass, calib, o);
  o.true_sequential = false;
  quantize_language_model(not_sequential, calib, o);

  nn::Graph& g = per_group.graph;
  std::vector<TransformerBlock> blocks = find_transformer_blocks(g);
  BlockCalibration reference(g, calib, o.batch, blocks[0]);
  for (const TransformerBlock& b : blocks) {
    std::vector<size_t> linears = block_linears(g, b, o.exclude);
    std::vector<int> inputs;  // in the order they are produced
    for (size_t n : linears)
      if (std::find(inputs.begin(), inputs.end(), g.nodes()[n].inputs[0]) == inputs.end())
        inputs.push_back(g.nodes()[n].inputs[0]);
    ASSERT_EQ(inputs.size(), 4u);  // q/k/v, o, the MLP's first layer(s), its last
    for (int value : inputs) {
      int64_t dim = 0;
      for (size_t n : linears)
        if (g.nodes()[n].inputs[0] == value) dim = g.nodes()[n].param("weight").value.shape()[1];
      HessianAccumulator h(dim);
      reference.observe(b, {value}, [&](int v, const Tensor& x) {
        if (v == value) h.add(x);
      });
      for (size_t n : linears)
        if (g.nodes()[n].inputs[0] == value)
          g.nodes()[n].param("weight").value = gptq_quantize(g.nodes()[n].param("weight").value, h.hessian(), o.weights, o.gptq).weight;
    }
    reference.advance(b);
  }
  size_t compared = 0;
  double differs = 0;
  for (const auto& node : one_pass.graph.nodes()) {
    if (!node.attrs.contains("weight_quant")) continue;
    const Tensor &a = node.param("weight").value, &expected = per_group.graph.node(node.name).param("weight").value,
                 &other = not_sequential.graph.node(node.name).param("weight").value;
    ASSERT_EQ(a.numel(), expected.numel());
    for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<float>()[i], expected.data<float>()[i]) << node.name << " " << i;
    differs += squared_distance(a, other);
    ++compared;
  }
  EXPECT_EQ(compared, r.layers.size());
  EXPECT_GE(compared, 12u);
  EXPECT_GT(differs, 0.0);  // the first block's o and MLP layers see other inputs
}

TEST(LlmQuantize, TrueSequentialGptqEqualsOnePassPerLayerGroupLlama) {
  expect_one_pass_equals_a_pass_per_group([](uint64_t seed) { return tiny_llama(seed); }, 256);
}

// BERT: q/k/v read the block input itself (a stage that runs no node), the MLP has one first layer.
TEST(LlmQuantize, TrueSequentialGptqEqualsOnePassPerLayerGroupBert) { expect_one_pass_equals_a_pass_per_group(tiny_bert, 8); }

TEST(LlmQuantize, FourBitResultsRunAsPackedInt4) {
  auto calib = random_windows(8, 24, 7);
  io::LanguageModel gptq = tiny_llama(3), packed = tiny_llama(3), plain = tiny_llama(3);
  LlmQuantizeOptions o;
  o.quiet = true;
  o.weights = {4, 32, false};
  o.gptq.act_order = true;
  o.gptq.static_groups = true;  // groups stay runs of inputs, so the layout fits
  quantize_language_model(gptq, calib, o);
  int int4 = 0;
  for (const auto& node : gptq.graph.nodes()) int4 += node.kind == "Int4Linear";
  EXPECT_EQ(int4, 14);
  // RTN (no calibration, so both runs quantize the same weights) packed vs left f32.
  o.method = "rtn";
  quantize_language_model(packed, {}, o);
  o.pack_int4 = false;
  quantize_language_model(plain, {}, o);
  Tensor a = logits(packed.graph, calib), b = logits(plain.graph, calib);
  double scale = 0;
  for (int64_t i = 0; i < b.numel(); ++i) scale = std::max(scale, std::fabs(double(b.data<float>()[i])));
  // f16 scales and mins are the only difference.
  EXPECT_LT(std::sqrt(squared_distance(a, b) / double(a.numel())), 2e-3 * scale);
  // Decoding-sized inputs (<= 4 rows) take the int8-activation kernel: close as well.
  auto one = random_windows(1, 3, 8);
  Tensor c = logits(packed.graph, one), d = logits(plain.graph, one);
  EXPECT_LT(std::sqrt(squared_distance(c, d) / double(c.numel())), 2e-2 * scale);
}

// A tiny Llama with its Linear layers RTN-quantized to packed int4 (g32).
io::LanguageModel rtn4_tiny_llama(uint64_t seed) {
  io::LanguageModel lm = tiny_llama(seed);
  LlmQuantizeOptions o;
  o.quiet = true;
  o.method = "rtn";
  o.weights = {4, 32, false};
  quantize_language_model(lm, {}, o);
  return lm;
}

// The decoder runs the Int4Linear layers that share an input (q/k/v, gate/up) together, from the
// panel copy of their nibbles: each step's logits equal those of the plain forward pass, whose
// four rows (<= 4: the same int8-activation kernels, one row at a time) see the same prefix.
TEST(LlmQuantize, DecodingInt4LayersTogetherMatchesTheForwardPass) {
  io::LanguageModel lm = rtn4_tiny_llama(6);
  const std::vector<std::vector<int32_t>> window = {{5, 77, 130, 9}};
  Tensor full = logits(lm.graph, window);
  const int64_t v = full.shape()[2];
  nn::Decoder decoder(lm.graph, {.kv_cache = DType::f32});  // the forward pass's exact keys and values
  for (int64_t i = 0; i < 4; ++i) {
    std::vector<float> step = decoder.feed(std::span<const int32_t>(&window[0][size_t(i)], 1));
    for (int64_t j = 0; j < v; ++j)
      ASSERT_NEAR(step[size_t(j)], full.data<float>()[i * v + j], 1e-4 * (1 + std::fabs(step[size_t(j)]))) << i << "," << j;
  }
}

// A prompt fed to the decoder in one call takes the same s8-activation path as decoded tokens
// (12 rows: the int4 prefill kernel's 6-row tiles): its last logits equal feeding the tokens one
// at a time, and stay close to the plain forward pass (f32 activations x dequantized weights).
TEST(LlmQuantize, DecoderPromptsUseInt8ActivationsLikeDecodedTokens) {
  io::LanguageModel lm = rtn4_tiny_llama(6);
  const std::vector<int32_t> prompt = {5, 77, 130, 9, 41, 3, 250, 17, 88, 120, 7, 64};
  nn::Decoder at_once(lm.graph), one_by_one(lm.graph);
  const std::vector<float> a = at_once.feed(prompt);
  std::vector<float> b;
  for (int32_t token : prompt) b = one_by_one.feed(std::span<const int32_t>(&token, 1));
  ASSERT_EQ(a.size(), b.size());
  for (size_t j = 0; j < a.size(); ++j) ASSERT_NEAR(a[j], b[j], 1e-4 * (1 + std::fabs(a[j]))) << j;
  const Tensor full = logits(lm.graph, {prompt});
  const int64_t v = full.shape()[2];
  double distance = 0, norm = 0;
  for (int64_t j = 0; j < v; ++j) {
    const double f = full.data<float>()[(int64_t(prompt.size()) - 1) * v + j];
    distance += (a[size_t(j)] - f) * (a[size_t(j)] - f);
    norm += f * f;
  }
  EXPECT_LT(std::sqrt(distance / norm), 5e-2);  // 8-bit activations in a random tiny model: 2.3% here
}

TEST(LlmQuantize, Int8HeadUntiesTheOutputLayer) {
  auto calib = random_windows(2, 16, 9);
  io::LanguageModel lm = tiny_llama(4), reference = tiny_llama(4);
  lm.config.tied_embeddings = true;
  LlmQuantizeOptions o;
  o.quiet = true;
  o.method = "rtn";
  o.weights = {8, 32, false};
  o.int8_head = true;
  quantize_language_model(lm, {}, o);
  EXPECT_EQ(lm.graph.node("lm_head").kind, "DynamicQuantLinear");
  EXPECT_FALSE(lm.config.tied_embeddings);  // so an export writes output.weight
  // The tied token embedding reads the head's int8 table: one int8 copy, no f32 table.
  const nn::Node& embed = lm.graph.node("model.embed_tokens");
  const nn::Node& head = lm.graph.node("lm_head");
  EXPECT_EQ(embed.param("weight").value.dtype(), DType::i8);
  EXPECT_EQ(embed.param("weight").value.raw_data(), head.param("weight").value.raw_data());
  EXPECT_EQ(embed.param("weight_scale").value.raw_data(), head.param("weight_scale").value.raw_data());
  Tensor a = logits(lm.graph, calib), b = logits(reference.graph, calib);
  double scale = 0;
  for (int64_t i = 0; i < b.numel(); ++i) scale = std::max(scale, std::fabs(double(b.data<float>()[i])));
  EXPECT_LT(std::sqrt(squared_distance(a, b) / double(a.numel())), 0.02 * scale);
  // Prompts (more than 4 rows) multiply f32 activations by the dequantized int8 weights.
  EXPECT_TRUE(head.attrs.value("weight_only", false));
  Tensor hidden;
  nn::RunOptions capture;
  capture.after_node = [&](const nn::Node& node, std::span<const Tensor> out) {
    if (node.name == "model.norm") hidden = out[0].contiguous();
  };
  Tensor tokens = Tensor::uninitialized(Shape{1, 16}, DType::i64);
  for (int64_t j = 0; j < 16; ++j) tokens.mutable_data<int64_t>()[j] = calib[0][size_t(j)];
  const Tensor prompt = nn::forward(lm.graph, std::span<const Tensor>(&tokens, 1), capture).at(0).contiguous();
  ASSERT_TRUE(hidden.defined());
  const Tensor& q = head.param("weight").value;
  const float* row_scale = head.param("weight_scale").value.data<float>();
  const int64_t vocabulary = q.shape()[0], dim = q.shape()[1];
  for (int64_t t = 0; t < 16; ++t)
    for (int64_t v = 0; v < vocabulary; ++v) {
      double expected = 0;
      for (int64_t j = 0; j < dim; ++j)
        expected += double(hidden.data<float>()[t * dim + j]) * q.data<int8_t>()[v * dim + j] * row_scale[v];
      ASSERT_NEAR(prompt.data<float>()[t * vocabulary + v], expected, 1e-4 * (1 + std::fabs(expected))) << t << "," << v;
    }
  // Decoding (one row) multiplies Q8_0-quantized activations by the int8 rows: close to the same
  // formula.
  Tensor last = Tensor::uninitialized(Shape{1, 1}, DType::i64);
  last.mutable_data<int64_t>()[0] = calib[0][0];
  const Tensor decoded = nn::forward(lm.graph, std::span<const Tensor>(&last, 1), capture).at(0).contiguous();
  ASSERT_TRUE(head.prepared) << "the head's decoding form (its rows in panels) is built on first use";
  double worst = 0, peak = 0;
  for (int64_t v = 0; v < vocabulary; ++v) {
    double expected = 0;
    for (int64_t j = 0; j < dim; ++j) expected += double(hidden.data<float>()[j]) * q.data<int8_t>()[v * dim + j] * row_scale[v];
    worst = std::max(worst, std::fabs(decoded.data<float>()[v] - expected));
    peak = std::max(peak, std::fabs(expected));
  }
  EXPECT_LT(worst, 0.01 * peak);
  // Saved once and shared again on loading: the same logits, and a file without the f32 table.
  ScratchDir dir;
  EXPECT_THROW(io::save_language_model(dir.file("no-tokenizer.shrink"), lm, {}), UsageError);
  io::save_model(dir.file("int8.shrink"), lm.graph, {});
  io::save_model(dir.file("f32.shrink"), reference.graph, {});
  io::LoadedModel loaded = io::load_model(dir.file("int8.shrink"));
  EXPECT_EQ(loaded.graph.node("model.embed_tokens").param("weight").value.raw_data(),
            loaded.graph.node("lm_head").param("weight").value.raw_data());
  Tensor c = logits(loaded.graph, calib);
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<float>()[i], c.data<float>()[i]);
  const uintmax_t table = 256 * 64;  // vocabulary x dim: 3 bytes saved per value, less the row scales
  EXPECT_LT(std::filesystem::file_size(dir.file("int8.shrink")) + 2 * table,
            std::filesystem::file_size(dir.file("f32.shrink")));
}

TEST(LlmQuantize, ActOrderAndStaticGroupsRunAndBadInputIsRefused) {
  auto calib = random_windows(4, 16, 6);
  io::LanguageModel lm = tiny_llama(2);
  LlmQuantizeOptions o;
  o.quiet = true;
  o.weights = {4, 32, true};
  o.gptq.act_order = true;
  o.gptq.static_groups = true;
  EXPECT_NO_THROW(quantize_language_model(lm, calib, o));
  o.method = "awq2";
  EXPECT_THROW(quantize_language_model(lm, calib, o), UsageError);
  o.method = "gptq";
  EXPECT_THROW(quantize_language_model(lm, {}, o), UsageError);  // GPTQ without calibration
  std::vector<int32_t> stream(10, 1);
  EXPECT_THROW(sample_calibration(stream, 4, 16, 0), UsageError);  // shorter than a window
  auto windows = sample_calibration(std::vector<int32_t>(100, 3), 5, 16, 9);
  EXPECT_EQ(windows.size(), 5u);
  EXPECT_EQ(windows[0].size(), 16u);
}

}  // namespace
}  // namespace shrink::compress
