// Structured channel pruning: the pruned model computes exactly what the dense model computes
// with those channels zeroed; residual partners stay in step; bad settings are refused.
#include <gtest/gtest.h>

#include "compress/llm_test_models.h"
#include "nn/nn_test_support.h"
#include "shrink/compress/llm_prune.h"
#include "shrink/compress/structured.h"
#include "shrink/nn/zoo.h"

namespace shrink::testing {
namespace {

// Random BatchNorm statistics and affine parameters, so that eval mode is not the identity.
void randomize_norms(nn::Graph& g) {
  Rng rng(9);
  for (nn::Node& n : g.nodes())
    if (n.kind == "BatchNorm2d" || n.kind == "BatchNorm1d")
      for (nn::Param& p : n.params)
        for (int64_t i = 0; i < p.value.numel(); ++i)
          p.value.mutable_data<float>()[i] = p.name == "running_var" ? rng.uniform(0.5f, 1.5f) : rng.uniform(-0.5f, 1.f);
}

// Zeroes the removed channels at their source: producer rows and biases, BatchNorm affine params.
void zero_channels(nn::Graph& g, const compress::ChannelGroupReport& group) {
  for (const std::string& producer : group.producers) {
    nn::Node& n = g.node(producer);
    Tensor& w = n.param("weight").value;
    int64_t per = w.numel() / w.shape()[0];
    for (int64_t c : group.removed) {
      std::fill(w.mutable_data<float>() + c * per, w.mutable_data<float>() + (c + 1) * per, 0.f);
      if (nn::Param* b = n.find_param("bias")) b->value.mutable_data<float>()[c] = 0.f;
    }
    // The BatchNorms right after a producer (the zoo's naming: X.conv -> X.bn).
    std::string bn = producer.substr(0, producer.rfind('.')) + ".bn";
    if (g.node_index(bn) >= 0)
      for (int64_t c : group.removed)
        for (const char* name : {"weight", "bias"}) g.node(bn).param(name).value.mutable_data<float>()[c] = 0.f;
  }
}

TEST(StructuredPruning, CnnOutputEqualsTheDenseModelWithChannelsZeroed) {
  nn::Graph dense = nn::build_architecture("cnn", {.seed = 2});
  randomize_norms(dense);
  nn::Graph pruned = dense;
  for (auto& [name, p] : pruned.named_params()) p->value = p->value.clone();  // no shared storage
  compress::StructuredConfig config;
  config.fraction = 0.5;
  auto report = compress::prune_channels(pruned, config);
  int pruned_groups = 0;
  for (const auto& group : report)
    if (group.pruned) {
      ++pruned_groups;
      EXPECT_EQ(group.after, group.before - group.removed.size());
      zero_channels(dense, group);
    }
  // stem+block1 (tied by the residual Add), block1.0, down+block2 (tied), block2.0, fc.
  EXPECT_EQ(pruned_groups, 5);
  EXPECT_LT(pruned.parameter_count(), dense.parameter_count() * 0.35);
  EXPECT_EQ(pruned.node("block1.0.conv").attrs["out_channels"], 16);
  EXPECT_EQ(pruned.node("down.conv").attrs["in_channels"], 16);
  EXPECT_EQ(pruned.node("fc").attrs["in_features"], 32 * 49);
  Rng rng(3);
  Tensor x = random_tensor(Shape{3, 1, 28, 28}, rng);
  Tensor a = nn::forward(pruned, std::vector<Tensor>{x})[0], b = nn::forward(dense, std::vector<Tensor>{x})[0];
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-4) << i;
}

TEST(StructuredPruning, MlpNeuronsAndTheOutputLayerIsKept) {
  nn::Graph g = nn::build_architecture("mlp", {.seed = 1});
  compress::StructuredConfig config;
  config.fraction = 0.75;
  config.l1 = true;
  auto report = compress::prune_channels(g, config);
  EXPECT_EQ(g.node("fc1").attrs["out_features"], 64);
  EXPECT_EQ(g.node("fc2").attrs["in_features"], 64);
  EXPECT_EQ(g.node("head").attrs["out_features"], 10) << "the logits are never pruned";
  bool head_reported = false;
  for (const auto& r : report)
    if (r.producers == std::vector<std::string>{"head"}) {
      head_reported = true;
      EXPECT_FALSE(r.pruned);
      EXPECT_NE(r.reason.find("graph output"), std::string::npos);
    }
  EXPECT_TRUE(head_reported);
}

// A Llama block: the MLP neurons (gate and up rows, down's columns) are removed; the residual
// stream and the attention projections are left alone with a reason; the logits equal those of
// the dense model with the same neurons zeroed.
TEST(StructuredPruning, LlamaMlpNeuronsAreRemoved) {
  io::LanguageModel lm = tiny_llama(13);
  io::LanguageModel zeroed = tiny_llama(13);
  const int64_t params = lm.graph.parameter_count();
  compress::StructuredConfig config;
  config.fraction = 0.25;
  auto report = compress::prune_channels(lm.graph, config);
  int pruned = 0;
  for (const auto& group : report) {
    if (!group.pruned) {
      EXPECT_FALSE(group.reason.empty());
      continue;
    }
    ++pruned;
    ASSERT_EQ(group.producers.size(), 2u);
    EXPECT_NE(group.producers[0].find("mlp"), std::string::npos) << group.producers[0];
    EXPECT_EQ(group.before, 96);
    EXPECT_EQ(group.after, 72);
    zero_channels(zeroed.graph, group);
  }
  EXPECT_EQ(pruned, 2) << "one MLP per block";
  EXPECT_EQ(lm.graph.node("model.layers.1.mlp.down_proj").param("weight").value.shape(), (Shape{64, 72}));
  EXPECT_EQ(params - lm.graph.parameter_count(), 2 * 24 * 3 * 64);
  auto windows = random_windows(2, 12, 3);
  const Tensor a = logits(lm.graph, windows).clone(), b = logits(zeroed.graph, windows);
  double norm = 0;
  for (int64_t i = 0; i < b.numel(); ++i) norm += double(b.data<float>()[i]) * b.data<float>()[i];
  EXPECT_LT(squared_distance(a, b), 1e-10 * norm);
}

// Whole key/value groups of attention heads: q, k, v rows and o columns go, the Attention node
// loses the heads, and the logits equal the dense model's with those heads' o columns zeroed
// (a head whose output is multiplied by zero contributes nothing).
TEST(StructuredPruning, AttentionHeadGroupsAreRemoved) {
  io::LanguageModel lm = tiny_llama(14);
  io::LanguageModel zeroed = tiny_llama(14);
  compress::StructuredConfig config;
  config.fraction = 0.5;
  auto report = compress::prune_attention_heads(lm.graph, config);
  ASSERT_EQ(report.size(), 2u);
  for (const auto& r : report) {
    EXPECT_TRUE(r.reason.empty()) << r.reason;
    EXPECT_EQ(r.kv_heads_before, 2);
    EXPECT_EQ(r.kv_heads_after, 1);
    EXPECT_EQ(r.heads_after, 2);
    ASSERT_EQ(r.removed.size(), 1u);
    Tensor& o = zeroed.graph.node(r.attention + ".o_proj").param("weight").value;  // (64, 4 heads x 16)
    for (int64_t row = 0; row < 64; ++row)
      for (int64_t c = r.removed[0] * 32; c < (r.removed[0] + 1) * 32; ++c) o.mutable_data<float>()[row * 64 + c] = 0.f;
  }
  EXPECT_EQ(lm.graph.node("model.layers.0.self_attn.q_proj").param("weight").value.shape(), (Shape{32, 64}));
  EXPECT_EQ(lm.graph.node("model.layers.0.self_attn.k_proj").param("weight").value.shape(), (Shape{16, 64}));
  EXPECT_EQ(lm.graph.node("model.layers.0.self_attn.o_proj").param("weight").value.shape(), (Shape{64, 32}));
  auto windows = random_windows(2, 12, 4);
  const Tensor a = logits(lm.graph, windows).clone(), b = logits(zeroed.graph, windows);
  double norm = 0;
  for (int64_t i = 0; i < b.numel(); ++i) norm += double(b.data<float>()[i]) * b.data<float>()[i];
  EXPECT_LT(squared_distance(a, b), 1e-10 * norm);
  config.fraction = 0.4;  // floor(0.4 x 1) = 0 of the one group left: nothing to remove, said so
  report = compress::prune_attention_heads(lm.graph, config);
  EXPECT_NE(report[0].reason.find("fewer than one"), std::string::npos) << report[0].reason;
  config.fraction = 1.0;
  EXPECT_THROW(compress::prune_attention_heads(lm.graph, config), UsageError);
}

// With activation statistics, neurons and heads are ranked by their contribution to the output
// projection, ||X_c|| ||W[:, c]||: a neuron with the largest weights but no activation goes first,
// and so does a head group whose outputs are silent.
TEST(StructuredPruning, ActivationStatisticsDecideWhichNeuronsAndHeadsGo) {
  io::LanguageModel lm = tiny_llama(15);
  const std::string down = "model.layers.0.mlp.down_proj", o_proj = "model.layers.0.self_attn.o_proj";
  // Real statistics: one norm per input feature of every block Linear, all positive.
  auto norms = compress::block_linear_input_norms(lm.graph, random_windows(3, 10, 5), 2, true);
  EXPECT_EQ(norms.size(), 2u * 7u);  // q, k, v, o, gate, up, down in each of two blocks
  ASSERT_EQ(norms.at(down).size(), 96u);
  for (float n : norms.at(down)) EXPECT_GT(n, 0.f);
  // Neuron 7 gets the largest weights; by weight norm it survives, silenced it goes.
  for (const char* proj : {"gate_proj", "up_proj"}) {
    Tensor& w = lm.graph.node(std::string("model.layers.0.mlp.") + proj).param("weight").value;
    for (int64_t i = 0; i < 64; ++i) w.mutable_data<float>()[7 * 64 + i] *= 10.f;
  }
  compress::StructuredConfig config;
  config.fraction = 0.02;  // one neuron of 96
  config.exclude = {"model.layers.1.*"};
  nn::Graph by_weights = lm.graph;
  auto report = compress::prune_channels(by_weights, config);
  auto removed_in_block0 = [](const std::vector<compress::ChannelGroupReport>& r) {
    for (const auto& g : r)
      if (g.pruned) return g;
    return compress::ChannelGroupReport{};
  };
  EXPECT_FALSE(removed_in_block0(report).by_activation);
  ASSERT_EQ(removed_in_block0(report).removed.size(), 1u);
  EXPECT_NE(removed_in_block0(report).removed[0], 7);
  norms.at(down)[7] = 0.f;
  config.input_norms = norms;
  nn::Graph by_activation = lm.graph;
  report = compress::prune_channels(by_activation, config);
  EXPECT_TRUE(removed_in_block0(report).by_activation);
  EXPECT_EQ(removed_in_block0(report).removed, std::vector<int64_t>{7});
  // Heads: the second key/value group's outputs (o_proj columns 32..63) are silent.
  for (int64_t c = 32; c < 64; ++c) config.input_norms.at(o_proj)[size_t(c)] = 1e-6f;
  config.fraction = 0.5;
  config.exclude.clear();
  auto heads = compress::prune_attention_heads(lm.graph, config);
  EXPECT_TRUE(heads[0].by_activation);
  EXPECT_EQ(heads[0].removed, std::vector<int64_t>{1});
  // ... and the first group when it is the silent one.
  for (int64_t c = 0; c < 64; ++c) config.input_norms.at(o_proj)[size_t(c)] = c < 32 ? 1e-6f : 1.f;
  io::LanguageModel other = tiny_llama(15);
  heads = compress::prune_attention_heads(other.graph, config);
  EXPECT_EQ(heads[0].removed, std::vector<int64_t>{0});
  // Statistics of the wrong width are refused, the graph left as it was.
  config.input_norms.at(o_proj).resize(5);
  io::LanguageModel fresh = tiny_llama(15);
  EXPECT_THROW(compress::prune_attention_heads(fresh.graph, config), UsageError);
  EXPECT_EQ(fresh.graph.node(o_proj).param("weight").value.shape(), (Shape{64, 64}));
}

TEST(StructuredPruning, ExclusionsAndBadFractions) {
  nn::Graph g = nn::build_architecture("mlp", {.seed = 1});
  compress::StructuredConfig config;
  config.exclude = {"fc1"};
  compress::prune_channels(g, config);
  EXPECT_EQ(g.node("fc1").attrs["out_features"], 256);
  EXPECT_EQ(g.node("fc2").attrs["out_features"], 128);
  for (double f : {-0.1, 1.0}) {
    config.fraction = f;
    EXPECT_THROW(compress::prune_channels(g, config), UsageError);
  }
}

}  // namespace
}  // namespace shrink::testing
