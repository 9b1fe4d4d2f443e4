// Every op's backward rule against central finite differences, over awkward shapes and options.
#include "nn/nn_test_support.h"

namespace shrink::testing {
namespace {

using nlohmann::json;

Tensor input(const Shape& shape, uint64_t seed = 3, float low = -1.f, float high = 1.f) {
  Rng rng(seed);
  return random_tensor(shape, rng, low, high);
}

// Values bounded away from zero (and from 6), so the kinks of ReLU/ReLU6 lie outside the step.
Tensor away_from_kinks(const Shape& shape) {
  Tensor t = input(shape, 5, -7.f, 7.f);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float& v = t.mutable_data<float>()[i];
    if (std::abs(v) < 0.1f) v += 0.3f;
    if (std::abs(v - 6.f) < 0.1f) v += 0.3f;
  }
  return t;
}

void check_single(const nn::Node& node, std::vector<Tensor> inputs, GradCheckOptions options = {}) {
  std::vector<nn::ValueInfo> infos;
  for (const Tensor& t : inputs) infos.push_back({t.shape(), t.dtype()});
  nn::Graph graph = single_node_graph(node, infos);
  expect_gradients_match(graph, std::move(inputs), options);
}

TEST(GradCheck, Linear) {
  check_single(make_node("Linear", {{"in_features", 5}, {"out_features", 3}},
                         {{"weight", {3, 5}}, {"bias", {3}}}),
               {input({2, 4, 5})});
  check_single(make_node("Linear", {{"in_features", 1}, {"out_features", 7}}, {{"weight", {7, 1}}}),
               {input({3, 1})});
}

struct ConvCase {
  json attrs;
  Shape x, w;
  bool bias;
};

TEST(GradCheck, Conv2dStridesPaddingDilationGroups) {
  std::vector<ConvCase> cases = {
      {{{"in_channels", 2}, {"out_channels", 3}, {"kernel_size", 3}, {"padding", 1}}, {2, 2, 5, 6}, {3, 2, 3, 3}, true},
      {{{"in_channels", 3}, {"out_channels", 2}, {"kernel_size", json::array({2, 3})}, {"stride", 2}, {"dilation", json::array({2, 1})}},
       {1, 3, 7, 8}, {2, 3, 2, 3}, true},
      {{{"in_channels", 4}, {"out_channels", 6}, {"kernel_size", 3}, {"groups", 2}, {"padding", json::array({0, 2})}},
       {2, 4, 5, 5}, {6, 2, 3, 3}, false},
      {{{"in_channels", 3}, {"out_channels", 3}, {"kernel_size", 3}, {"groups", 3}, {"stride", json::array({1, 2})}, {"padding", 1}},
       {2, 3, 4, 5}, {3, 1, 3, 3}, true},
      {{{"in_channels", 2}, {"out_channels", 4}, {"kernel_size", 1}}, {3, 2, 2, 3}, {4, 2, 1, 1}, true},
  };
  for (const ConvCase& c : cases) {
    std::vector<ParamSpec> params = {{"weight", c.w}};
    if (c.bias) params.push_back({"bias", {c.w[0]}});
    SCOPED_TRACE(c.attrs.dump());
    check_single(make_node("Conv2d", c.attrs, params), {input(c.x)});
  }
}

std::vector<ParamSpec> batch_norm_params(int64_t c) {
  return {{"weight", {c}, true, 0.5f, 1.5f},
          {"bias", {c}},
          {"running_mean", {c}, false},
          {"running_var", {c}, false, 0.5f, 1.5f}};
}

TEST(GradCheck, BatchNormTrainingAndEval) {
  for (bool training : {true, false}) {
    SCOPED_TRACE(training ? "training" : "eval");
    GradCheckOptions options;
    options.training = training;
    options.step = 1e-3;
    check_single(make_node("BatchNorm2d", {{"num_features", 3}}, batch_norm_params(3)),
                 {input({2, 3, 2, 3})}, options);
    check_single(make_node("BatchNorm1d", {{"num_features", 4}}, batch_norm_params(4)),
                 {input({5, 4})}, options);
    check_single(make_node("BatchNorm1d", {{"num_features", 2}}, batch_norm_params(2)),
                 {input({3, 2, 4})}, options);
  }
}

TEST(GradCheck, Activations) {
  for (const char* kind : {"ReLU", "ReLU6", "GELU", "SiLU", "Tanh", "Sigmoid"}) {
    SCOPED_TRACE(kind);
    check_single(make_node(kind, json::object(), {}), {away_from_kinks({3, 7})});
  }
  check_single(make_node("GELU", {{"approximate", "tanh"}}, {}), {input({2, 9}, 3, -3.f, 3.f)});
}

TEST(GradCheck, LastAxisOps) {
  check_single(make_node("Softmax", json::object(), {}), {input({3, 5}, 3, -3.f, 3.f)});
  check_single(make_node("LayerNorm", {{"normalized_shape", 6}}, {{"weight", {6}}, {"bias", {6}}}),
               {input({2, 3, 6})}, {.step = 1e-3});
  check_single(make_node("RMSNorm", {{"normalized_shape", 5}}, {{"weight", {5}}}), {input({4, 5})},
               {.step = 1e-3});
}

TEST(GradCheck, Pooling) {
  check_single(make_node("MaxPool2d", {{"kernel_size", 2}}, {}), {input({2, 2, 4, 6})});
  check_single(make_node("MaxPool2d", {{"kernel_size", 3}, {"stride", 2}, {"padding", 1}}, {}),
               {input({1, 2, 5, 5})});
  check_single(make_node("AvgPool2d", {{"kernel_size", 3}, {"stride", 2}, {"padding", 1}}, {}),
               {input({2, 1, 5, 6})});
  check_single(make_node("AdaptiveAvgPool2d", {{"output_size", json::array({2, 3})}}, {}),
               {input({1, 3, 5, 7})});
}

TEST(GradCheck, StructuralOps) {
  check_single(make_node("Flatten", json::object(), {}), {input({2, 3, 2, 2})});
  check_single(make_node("Add", json::object(), {}), {input({2, 5}), input({2, 5}, 4)});
  check_single(make_node("Mul", json::object(), {}), {input({3, 4}), input({3, 4}, 4)});
  check_single(make_node("Concat", {{"axis", 1}}, {}), {input({2, 3, 2}), input({2, 1, 2}, 4)});
  check_single(make_node("Concat", {{"axis", -1}}, {}), {input({2, 3}), input({2, 4}, 4)});
  check_single(make_node("Dropout", {{"p", 0.3}}, {}), {input({4, 6})});
  check_single(make_node("Reshape", {{"shape", {1, -1, 4}}}, {}), {input({3, 2, 1, 2})});
  check_single(make_node("Reshape", {{"shape", {6, 2}}}, {}), {input({3, 4})});
}

// |z| is smooth away from z = 0: real and imaginary parts kept in [0.3, 1.5] in magnitude.
TEST(GradCheck, ComplexMagnitude) {
  Tensor x = input({2, 6, 1, 3}, 7, 0.3f, 1.5f);
  for (int64_t i = 0; i < x.numel(); i += 3) x.mutable_data<float>()[i] *= -1;
  check_single(make_node("ComplexMagnitude", json::object(), {}), {x});
  check_single(make_node("ComplexMagnitude", json::object(), {}), {input({3, 4}, 8, 0.3f, 1.5f)});
}

TEST(Ops, ComplexMagnitudeAndReshapeCheckTheirShapes) {
  const auto infer = [](const char* kind, json attrs, const Shape& shape) {
    return single_node_graph(make_node(kind, std::move(attrs), {}), {{shape, DType::f32}});
  };
  nn::Graph g = infer("ComplexMagnitude", json::object(), Shape{-1, 8, 1, 4});
  EXPECT_EQ(g.values().back().info.shape, (Shape{-1, 4, 1, 4}));
  Tensor z = Tensor::empty({1, 2}, DType::f32);
  z.mutable_data<float>()[0] = 3, z.mutable_data<float>()[1] = -4;
  g = infer("ComplexMagnitude", json::object(), Shape{-1, 2});
  EXPECT_EQ(nn::forward(g, std::span<const Tensor>(&z, 1)).at(0).data<float>()[0], 5.f);
  EXPECT_THROW(infer("ComplexMagnitude", json::object(), Shape{2, 3}), UsageError);  // odd channels
  EXPECT_EQ(infer("Reshape", {{"shape", {1, -1, 8}}}, Shape{-1, 8}).values().back().info.shape, (Shape{1, -1, 8}));
  EXPECT_EQ(infer("Reshape", {{"shape", {-1, 3}}}, Shape{2, 6}).values().back().info.shape, (Shape{4, 3}));
  EXPECT_THROW(infer("Reshape", {{"shape", {5, -1}}}, Shape{2, 6}), UsageError);   // 12 is not 5 x k
  EXPECT_THROW(infer("Reshape", {{"shape", {-1, -1}}}, Shape{2, 6}), UsageError);  // two free sizes
  EXPECT_THROW(infer("Reshape", {{"shape", {3, 3}}}, Shape{2, 6}), UsageError);
  EXPECT_THROW(infer("Reshape", json::object(), Shape{2, 6}), UsageError);
}

TEST(GradCheck, EmbeddingWeights) {
  Tensor ids = Tensor::empty(Shape{2, 3}, DType::i64);
  int64_t values[] = {0, 4, 2, 4, 1, 0};
  std::copy(values, values + 6, ids.mutable_data<int64_t>());
  check_single(make_node("Embedding", {{"num_embeddings", 5}, {"embedding_dim", 3}}, {{"weight", {5, 3}}}),
               {ids});
}

std::vector<ParamSpec> recurrent_params(int64_t gates, int64_t input, int64_t hidden, int64_t layers) {
  std::vector<ParamSpec> params;
  for (int64_t l = 0; l < layers; ++l) {
    std::string k = "_l" + std::to_string(l);
    params.push_back({"weight_ih" + k, {gates * hidden, l ? hidden : input}});
    params.push_back({"weight_hh" + k, {gates * hidden, hidden}});
    params.push_back({"bias_ih" + k, {gates * hidden}});
    params.push_back({"bias_hh" + k, {gates * hidden}});
  }
  return params;
}

TEST(GradCheck, LstmAndGruTwoLayers) {
  for (auto [kind, gates] : {std::pair{"LSTM", 4}, std::pair{"GRU", 3}}) {
    SCOPED_TRACE(kind);
    check_single(make_node(kind, {{"input_size", 3}, {"hidden_size", 4}, {"num_layers", 2}},
                           recurrent_params(gates, 3, 4, 2)),
                 {input({2, 5, 3})}, {.step = 1e-3});
  }
}

TEST(GradCheck, CausalAttentionWithRopeAndGroupedHeads) {
  for (bool rope : {false, true}) {
    SCOPED_TRACE(rope ? "rope" : "no rope");
    // 4 query heads of width 4 sharing 2 key/value heads.
    check_single(make_node("Attention", {{"num_heads", 4}, {"num_kv_heads", 2}, {"rope", rope}}, {}),
                 {input({2, 5, 16}, 3, -2, 2), input({2, 5, 8}, 4, -2, 2), input({2, 5, 8}, 6)},
                 {.step = 1e-3});
  }
}

TEST(GradCheck, PositionEmbeddingAndMeanPool) {
  check_single(make_node("PositionEmbedding", {{"max_positions", 6}, {"embedding_dim", 3}}, {{"weight", {6, 3}}}),
               {input({2, 4, 3})});
  check_single(make_node("MeanPool", {}, {}), {input({2, 5, 3})});
}

TEST(GradCheck, BidirectionalAttention) {
  check_single(make_node("Attention", {{"num_heads", 2}, {"causal", false}}, {}),
               {input({2, 4, 8}, 3, -2, 2), input({2, 4, 8}, 4, -2, 2), input({2, 4, 8}, 6)}, {.step = 1e-3});
}

}  // namespace
}  // namespace shrink::testing
