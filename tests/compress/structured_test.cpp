// Structured channel pruning: the pruned model computes exactly what the dense model computes
// with those channels zeroed; residual partners stay in step; bad settings are refused.
#include <gtest/gtest.h>

#include "nn/nn_test_support.h"
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
