// Magnitude pruning: exact counts per layer and globally, N:M patterns, overrides and exclusions,
// mask enforcement through training, the cubic schedule, and bad settings.
#include <gtest/gtest.h>

#include "nn/nn_test_support.h"
#include "shrink/compress/prune.h"
#include "shrink/nn/builder.h"
#include "shrink/train/losses.h"
#include "shrink/train/trainer.h"

namespace shrink::testing {
namespace {

using compress::PruneConfig;

nn::Graph mlp(uint64_t seed = 1) {
  nn::GraphBuilder b(seed);
  int x = b.input("x", Shape{-1, 16});
  x = b.op("relu", "ReLU", {b.linear("fc1", x, 16, 32)});
  b.output(b.linear("head", x, 32, 4));
  return b.take();
}

int64_t zeros(const Tensor& t) {
  int64_t z = 0;
  for (int64_t i = 0; i < t.numel(); ++i) z += t.data<float>()[i] == 0.f;
  return z;
}

TEST(Prune, PerLayerRemovesExactlyTheSmallest) {
  nn::Graph g = mlp();
  Tensor before = g.node("fc1").param("weight").value.clone();
  PruneConfig config;
  config.sparsity = 0.75;
  compress::prune_by_magnitude(g, config);
  const Tensor& w = g.node("fc1").param("weight").value;
  EXPECT_EQ(zeros(w), 384);  // 75% of 512
  EXPECT_EQ(zeros(g.node("head").param("weight").value), 96);
  float largest_pruned = 0, smallest_kept = 1e9;
  for (int64_t i = 0; i < w.numel(); ++i) {
    float m = std::abs(before.data<float>()[i]);
    if (w.data<float>()[i] == 0.f) largest_pruned = std::max(largest_pruned, m);
    else smallest_kept = std::min(smallest_kept, m);
  }
  EXPECT_LE(largest_pruned, smallest_kept);
  EXPECT_EQ(zeros(g.node("fc1").param("bias").value), 0) << "biases are not pruned";
}

TEST(Prune, GlobalThresholdSpreadsSparsityByMagnitude) {
  nn::Graph g = mlp();
  // Make the head's weights tiny: a global threshold must take them first.
  Tensor& head = g.node("head").param("weight").value;
  for (int64_t i = 0; i < head.numel(); ++i) head.mutable_data<float>()[i] *= 1e-6f;
  PruneConfig config;
  config.sparsity = 0.2;
  config.global = true;
  compress::prune_by_magnitude(g, config);
  EXPECT_EQ(zeros(head), 128);
  EXPECT_EQ(zeros(g.node("fc1").param("weight").value) + 128, int64_t(0.2 * 640));
}

TEST(Prune, NmKeepsNOfEveryMInputs) {
  for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}}) {
    nn::Graph g = mlp();
    PruneConfig config;
    config.n = n, config.m = m;
    compress::prune_by_magnitude(g, config);
    const Tensor& w = g.node("fc1").param("weight").value;
    for (int64_t start = 0; start < w.numel(); start += m) {
      int kept = 0;
      for (int j = 0; j < m; ++j) kept += w.data<float>()[start + j] != 0.f;
      ASSERT_EQ(kept, n) << "group at " << start;
    }
  }
}

TEST(Prune, OverridesAndExclusions) {
  nn::Graph g = mlp();
  PruneConfig config;
  config.sparsity = 0.5;
  config.overrides = {{"fc*", 0.25}};
  config.exclude = {"head"};
  compress::prune_by_magnitude(g, config);
  EXPECT_EQ(zeros(g.node("fc1").param("weight").value), 128);
  EXPECT_EQ(zeros(g.node("head").param("weight").value), 0);
  EXPECT_EQ(compress::prunable_params(g, config), std::vector<std::string>{"fc1.weight"});
}

TEST(Prune, RejectsBadSettings) {
  nn::Graph g = mlp();
  for (double s : {-0.1, 1.0, 1.5}) {
    PruneConfig config;
    config.sparsity = s;
    EXPECT_THROW(compress::prune_by_magnitude(g, config), UsageError) << s;
  }
  PruneConfig nm;
  nm.n = 4, nm.m = 4;
  EXPECT_THROW(compress::prune_by_magnitude(g, nm), UsageError);
  nm.n = 2, nm.m = 5;  // 16 inputs are not a multiple of 5
  EXPECT_THROW(compress::prune_by_magnitude(g, nm), UsageError);
  PruneConfig everything;
  everything.exclude = {"*"};
  EXPECT_THROW(compress::prune_by_magnitude(g, everything), UsageError);
}

// Random inputs, labels from a fixed linear rule.
class Rule final : public train::DataSource {
 public:
  int64_t size() const override { return 256; }
  train::Batch gather(const std::vector<int64_t>& indices) const override {
    train::Batch b;
    b.size = int64_t(indices.size());
    Tensor x = Tensor::empty(Shape{b.size, 16}, DType::f32);
    b.targets = Tensor::empty(Shape{b.size}, DType::i64);
    for (int64_t i = 0; i < b.size; ++i) {
      Rng rng(uint64_t(indices[size_t(i)]) + 1);
      float s = 0;
      for (int j = 0; j < 16; ++j) s += (x.mutable_data<float>()[i * 16 + j] = rng.normal()) * float(j % 4);
      b.targets.mutable_data<int64_t>()[i] = s > 0 ? 1 : 0;
    }
    b.inputs = {x};
    return b;
  }
};

TEST(Prune, MasksStayEnforcedThroughTraining) {
  nn::Graph g = mlp();
  PruneConfig config;
  config.sparsity = 0.6;
  compress::Masks masks = compress::prune_by_magnitude(g, config);
  auto opt = train::make_adamw({});
  train::Schedule schedule;
  schedule.base_lr = 0.01;
  train::TrainConfig tc;
  tc.epochs = 2;
  tc.batch_size = 32;
  tc.quiet = true;
  train::TrainerHooks hooks;
  hooks.before_step = [&](const train::StepInfo&) { compress::apply_masks(g, masks, true); };
  hooks.after_step = [&](const train::StepInfo&) { compress::apply_masks(g, masks); };
  Rule data;
  auto loss = [](const std::vector<Tensor>& out, const train::Batch& b) { return train::cross_entropy(out[0], b.targets); };
  train::fit(g, *opt, schedule, data, loss, tc, hooks);
  const Tensor& w = g.node("fc1").param("weight").value;
  const uint8_t* keep = masks.at("fc1.weight").data<uint8_t>();
  int64_t kept_nonzero = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    if (!keep[i]) {
      ASSERT_EQ(w.data<float>()[i], 0.f) << "a pruned weight came back at " << i;
    }
    kept_nonzero += keep[i] && w.data<float>()[i] != 0.f;
  }
  EXPECT_GT(kept_nonzero, 0);
  // Without the hooks, AdamW would revive pruned weights (the check above can fail).
  nn::Graph h = mlp();
  compress::Masks masks_h = compress::prune_by_magnitude(h, config);
  train::fit(h, *opt, schedule, data, loss, tc);
  EXPECT_LT(zeros(h.node("fc1").param("weight").value), 300);
}

TEST(Prune, CubicScheduleOfZhuAndGupta) {
  EXPECT_DOUBLE_EQ(compress::cubic_sparsity(0.0, 0.8, 0, 100), 0.0);
  EXPECT_NEAR(compress::cubic_sparsity(0.0, 0.8, 50, 100), 0.8 * (1 - 0.125), 1e-12);
  EXPECT_DOUBLE_EQ(compress::cubic_sparsity(0.0, 0.8, 100, 100), 0.8);
  EXPECT_DOUBLE_EQ(compress::cubic_sparsity(0.0, 0.8, 500, 100), 0.8);
}

}  // namespace
}  // namespace shrink::testing
