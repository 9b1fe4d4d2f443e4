// Quantization-aware training: FakeQuantize computes on the int8 region's grid with a
// straight-through gradient and a freezable moving-average range; weight fake quantization feeds
// the layers the grid the converter will store; a prepared graph trains, and its conversion
// agrees with the fake-quantized graph.
#include <gtest/gtest.h>

#include <cmath>

#include "compress/quant_test_models.h"
#include "shrink/compress/qat.h"
#include "shrink/nn/execute.h"
#include "shrink/quant/int8_linear.h"
#include "shrink/train/losses.h"
#include "shrink/train/optim.h"

namespace shrink::testing {
namespace {

nn::Node fake_quant_node(float lo, float hi, bool observe) {
  nn::Node node;
  node.name = "fq";
  node.kind = "FakeQuantize";
  node.attrs = {{"observe", observe}, {"averaging", 0.5}};
  Tensor range = Tensor::empty(Shape{2}, DType::f32);
  range.mutable_data<float>()[0] = lo, range.mutable_data<float>()[1] = hi;
  node.params.push_back({"range", range, {}, false});
  return node;
}

TEST(Qat, FakeQuantizeRoundsToTheGridWithAStraightThroughGradient) {
  nn::Graph graph = single_node_graph(fake_quant_node(-1.f, 3.f, false), {{Shape{-1}, DType::f32}});
  const U8QParams q = u8_activation_qparams(-1.f, 3.f);
  Tensor x = Tensor::empty(Shape{6}, DType::f32);
  const float values[6] = {-2.f, -1.f, 0.013f, 1.234f, 2.99f, 5.f};
  std::copy(values, values + 6, x.mutable_data<float>());
  nn::Tape tape;
  nn::RunOptions options;
  options.training = true;
  options.tape = &tape;
  std::vector<Tensor> in{x};
  const Tensor y = nn::forward(graph, in, options)[0];
  for (int i = 0; i < 6; ++i) {
    const float grid = std::clamp(std::nearbyint(values[i] / q.scale) + float(q.zero), 0.f, 127.f);
    EXPECT_NEAR(y.data<float>()[i], (grid - float(q.zero)) * q.scale, 1e-6) << values[i];
  }
  Tensor ones = Tensor::empty(Shape{6}, DType::f32);
  for (int i = 0; i < 6; ++i) ones.mutable_data<float>()[i] = 1.f;
  std::vector<Tensor> grads{ones};
  const Tensor dx = nn::backward(graph, tape, grads)[0];
  const float expected[6] = {0.f, 1.f, 1.f, 1.f, 1.f, 0.f};  // outside [-1, 3]: no gradient
  for (int i = 0; i < 6; ++i) EXPECT_EQ(dx.data<float>()[i], expected[i]) << values[i];
  const float* r = graph.nodes()[0].param("range").value.data<float>();
  EXPECT_EQ(r[0], -1.f) << "a frozen observer keeps its range";
  EXPECT_EQ(r[1], 3.f);
}

TEST(Qat, ObservingMovesTheRangeByTheAveragingConstant) {
  nn::Graph graph = single_node_graph(fake_quant_node(1.f, -1.f, true), {{Shape{-1}, DType::f32}});
  nn::RunOptions training;
  training.training = true;
  auto observe = [&](float lo, float hi) {
    Tensor x = Tensor::empty(Shape{2}, DType::f32);
    x.mutable_data<float>()[0] = lo, x.mutable_data<float>()[1] = hi;
    std::vector<Tensor> in{x};
    nn::forward(graph, in, training);
  };
  observe(-2.f, 4.f);  // the first batch sets the range
  const float* r = graph.nodes()[0].param("range").value.data<float>();
  EXPECT_EQ(r[0], -2.f);
  EXPECT_EQ(r[1], 4.f);
  observe(0.f, 8.f);  // then r += 0.5 (batch - r)
  EXPECT_FLOAT_EQ(r[0], -1.f);
  EXPECT_FLOAT_EQ(r[1], 6.f);
  Tensor x = Tensor::empty(Shape{1}, DType::f32);
  x.mutable_data<float>()[0] = 100.f;
  std::vector<Tensor> in{x};
  nn::forward(graph, in);  // evaluation mode never observes
  EXPECT_FLOAT_EQ(r[1], 6.f);
}

TEST(Qat, WeightFakeQuantizationUsesTheStoredGrid) {
  nn::Node node = make_node("Linear", {{"in_features", 9}, {"out_features", 4}, {"weight_bits", 4}},
                            {{"weight", Shape{4, 9}}, {"bias", Shape{4}}}, 3);
  nn::Graph graph = single_node_graph(node, {{Shape{-1, 9}, DType::f32}});
  Rng rng(4);
  const Tensor x = random_tensor(Shape{3, 9}, rng);
  std::vector<Tensor> in{x};
  const Tensor y = nn::forward(graph, in)[0];
  const Int8ChannelWeights q = quantize_per_channel_int8(node.param("weight").value, 4);
  for (int64_t c = 0; c < 4; ++c)
    for (int64_t j = 0; j < 9; ++j) EXPECT_LE(std::abs(int(q.q.data<int8_t>()[c * 9 + j])), 7);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 4; ++c) {
      double acc = node.param("bias").value.data<float>()[c];
      for (int64_t j = 0; j < 9; ++j)
        acc += double(x.data<float>()[r * 9 + j]) * q.q.data<int8_t>()[c * 9 + j] * q.scale.data<float>()[c];
      EXPECT_NEAR(y.data<float>()[r * 4 + c], acc, 1e-5);
    }
  graph.nodes()[0].attrs["weight_bits"] = 9;
  EXPECT_THROW(nn::forward(graph, in), UsageError);
}

TEST(Qat, PreparedGraphTrainsAndConvertsToTheSameGrid) {
  Rng rng(5);
  nn::Graph graph = small_cnn(6);
  randomize_batch_norms(graph, rng);
  const auto inserted = compress::prepare_qat(graph, {});
  EXPECT_EQ(inserted.size(), 6u);  // input, stem, block conv1, block conv2 (before the add), add, fc
  EXPECT_EQ(graph.node("stem.conv").attrs["weight_bits"], 8);
  EXPECT_THROW(compress::prepare_qat(graph, {}), UsageError) << "preparing twice";
  auto optimizer = train::make_sgd({});
  Tensor targets = Tensor::empty(Shape{8}, DType::i64);
  for (int64_t i = 0; i < 8; ++i) targets.mutable_data<int64_t>()[i] = i % 5;
  double first_loss = 0, last_loss = 0;
  const Tensor x = random_tensor(Shape{8, 2, 12, 12}, rng);
  for (int step = 0; step < 30; ++step) {
    if (step == 15) compress::fold_batch_norms(graph);  // freeze batch norms mid-training
    if (step == 20) compress::set_observing(graph, false);
    graph.zero_grad();
    nn::Tape tape;
    nn::RunOptions options;
    options.training = true;
    options.tape = &tape;
    std::vector<Tensor> in{x};
    const Tensor logits = nn::forward(graph, in, options)[0];
    const train::LossResult loss = train::cross_entropy(logits, targets);
    std::vector<Tensor> grads{loss.grad};
    nn::backward(graph, tape, grads);
    optimizer->step(graph, 0.02);
    (step == 0 ? first_loss : last_loss) = loss.loss;
  }
  EXPECT_LT(last_loss, first_loss) << "gradients flow through the fake quantization";
  compress::StaticQuantResult converted = compress::convert_qat(graph, {});
  for (const nn::Node& node : converted.graph.nodes()) EXPECT_NE(node.kind, "FakeQuantize");
  const Tensor probe = random_tensor(Shape{16, 2, 12, 12}, rng);
  std::vector<Tensor> in{probe};
  const Tensor a = nn::forward(graph, in)[0], b = nn::forward(converted.graph, in)[0];
  double peak = 0, diff = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    peak = std::max(peak, double(std::fabs(a.data<float>()[i])));
    diff = std::max(diff, double(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
  }
  EXPECT_LT(diff, 0.05 * peak) << "int8 arithmetic on the fake-quantized grid";
  EXPECT_THROW(compress::prepare_qat(graph = small_cnn(7), {9, {}, 0.01}), UsageError);
}

}  // namespace
}  // namespace shrink::testing
