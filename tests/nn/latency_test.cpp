// Forward-pass latency side by side: the made-up inputs and the shape of the measurements (their
// speed is the benchmarks' business, not a unit test's).
#include "shrink/eval/latency.h"

#include <gtest/gtest.h>

#include "shrink/core/error.h"
#include "shrink/nn/builder.h"

namespace shrink {
namespace {

nn::Graph mlp(int64_t width, uint64_t seed) {
  nn::GraphBuilder b(seed);
  int x = b.input("x", Shape{-1, 12});
  x = b.linear("fc1", x, 12, width);
  x = b.op("act", "ReLU", {x});
  b.output(b.linear("fc2", x, width, 3));
  return b.take();
}

// Token ids read by two embedding tables of 50 and 20 rows: ids must fit the smaller one.
nn::Graph two_tables() {
  nn::GraphBuilder b(1);
  const int ids = b.input("tokens", Shape{-1, -1}, DType::i64);
  const int a = b.embedding("big", ids, 50, 4);
  const int c = b.embedding("small", ids, 20, 4);
  b.output(b.op("sum", "Add", {a, c}));
  return b.take();
}

TEST(Latency, MadeUpInputsHaveTheGraphsShapesWithBatchAndSequence) {
  nn::Graph f32 = mlp(8, 1);
  Rng rng(3);
  auto inputs = eval::synthetic_inputs(f32, 5, 7, rng);
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].shape(), (Shape{5, 12}));
  EXPECT_EQ(inputs[0].dtype(), DType::f32);
  double sum_squares = 0;
  for (int64_t i = 0; i < 60; ++i) sum_squares += double(inputs[0].data<float>()[i]) * inputs[0].data<float>()[i];
  EXPECT_GT(sum_squares, 10.0);  // standard normal, not zeros

  nn::Graph tokens = two_tables();
  inputs = eval::synthetic_inputs(tokens, 3, 40, rng);
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].shape(), (Shape{3, 40}));
  int64_t largest = 0;
  for (int64_t i = 0; i < 120; ++i) {
    const int64_t id = inputs[0].data<int64_t>()[i];
    EXPECT_GE(id, 0);
    largest = std::max(largest, id);
  }
  EXPECT_LT(largest, 20);
  EXPECT_GE(largest, 10);  // 120 draws below 20 reach the upper half
  EXPECT_THROW(eval::synthetic_inputs(tokens, 0, 4, rng), UsageError);
}

TEST(Latency, IntegerInputsNoEmbeddingReadsAreRefused) {
  nn::GraphBuilder b(1);
  const int ids = b.input("ids", Shape{-1, 4}, DType::i64);
  b.output(b.op("ids_out", "Flatten", {ids}));
  nn::Graph graph = b.take();
  Rng rng(0);
  try {
    eval::synthetic_inputs(graph, 1, 1, rng);
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("no Embedding reads"), std::string::npos) << e.what();
  }
}

TEST(Latency, EveryModelIsMeasuredAtEveryBatchWithOrderedPercentiles) {
  nn::Graph small = mlp(8, 1), large = mlp(256, 2);
  eval::LatencyOptions options;
  options.batches = {1, 16};
  options.rounds = 3;
  options.round_seconds = 0.002;
  options.profile = true;
  std::vector<std::string> steps;
  const auto results =
      eval::measure_latency({&small, &large}, options, [&](const std::string& step) { steps.push_back(step); });
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    ASSERT_EQ(r.by_batch.size(), 2u);
    for (const auto& s : r.by_batch) {
      EXPECT_GE(s.passes, 3);  // at least one pass a round
      EXPECT_GT(s.p10, 0.0);
      EXPECT_LE(s.p10, s.median);
      EXPECT_LE(s.median, s.p90);
    }
    ASSERT_EQ(r.by_kind.size(), 2u);  // Linear and ReLU
    EXPECT_TRUE(r.by_kind[0].first == "Linear" || r.by_kind[0].first == "ReLU");
    EXPECT_GE(r.by_kind[0].second, r.by_kind[1].second);
  }
  // 2 x 2 warm-ups, 3 rounds x 2 batches x 2 models, 2 profiles
  EXPECT_EQ(steps.size(), 4u + 12u + 2u);
  EXPECT_EQ(steps[4], "round 1/3, batch 1, model 1/2");
}

TEST(Latency, NothingToMeasureIsAUsageError) {
  nn::Graph graph = mlp(4, 1);
  eval::LatencyOptions options;
  EXPECT_THROW(eval::measure_latency({}, options), UsageError);
  options.rounds = 0;
  EXPECT_THROW(eval::measure_latency({&graph}, options), UsageError);
  options.rounds = 1;
  options.batches.clear();
  EXPECT_THROW(eval::measure_latency({&graph}, options), UsageError);
}

}  // namespace
}  // namespace shrink
