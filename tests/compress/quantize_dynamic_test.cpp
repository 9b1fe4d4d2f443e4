// Dynamic int8 quantization: quantized Linear/LSTM/GRU layers compute what the f32 layers do
// within the two rounding steps, equal x_q W_q^T exactly as the reference kernel computes it,
// survive a save/load round trip bit for bit; convolutions only when asked for, then within the
// rounding of their per-position activations.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/nn_test_support.h"
#include "shrink/compress/quantize_dynamic.h"
#include "shrink/io/native_model.h"
#include "shrink/nn/builder.h"
#include "shrink/nn/execute.h"
#include "shrink/quant/int8_linear.h"
#include "test_support.h"

namespace shrink::testing {
namespace {

Tensor run(nn::Graph& graph, const Tensor& x) {
  std::vector<Tensor> in{x};
  return nn::forward(graph, in)[0];
}

// max |a - b| / max |b|
double relative_error(const Tensor& a, const Tensor& b) {
  double diff = 0, peak = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, double(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
    peak = std::max(peak, double(std::fabs(b.data<float>()[i])));
  }
  return diff / peak;
}

nn::Graph mlp(uint64_t seed) {
  nn::GraphBuilder b(seed);
  int x = b.input("x", Shape{-1, 67});
  x = b.op("relu", "ReLU", {b.linear("fc1", x, 67, 45)});
  b.output(b.linear("head", x, 45, 10));
  return b.take();
}

TEST(DynamicQuant, PerChannelWeightsRoundTripWithinHalfAStep) {
  Rng rng(1);
  Tensor w = random_tensor(Shape{9, 33}, rng);
  w.mutable_data<float>()[0] = 5.f;  // one channel with an outlier keeps the others' scales
  const Int8ChannelWeights q = quantize_per_channel_int8(w);
  const Tensor back = dequantize_per_channel_int8(q);
  for (int64_t c = 0; c < 9; ++c) {
    float peak = 0;
    for (int64_t j = 0; j < 33; ++j) peak = std::max(peak, std::fabs(w.data<float>()[c * 33 + j]));
    EXPECT_FLOAT_EQ(q.scale.data<float>()[c], peak / 127.f);
    for (int64_t j = 0; j < 33; ++j) {
      EXPECT_LE(std::abs(int(q.q.data<int8_t>()[c * 33 + j])), 127);
      EXPECT_LE(std::fabs(back.data<float>()[c * 33 + j] - w.data<float>()[c * 33 + j]), 0.5001f * peak / 127.f);
    }
  }
}

TEST(DynamicQuant, LinearEqualsTheQuantizedProductAndApproximatesF32) {
  nn::Graph f32 = mlp(2), int8 = mlp(2);
  auto report = compress::quantize_dynamic(int8, {});
  ASSERT_EQ(report.size(), 2u);
  for (const auto& l : report) {
    EXPECT_TRUE(l.quantized) << l.node;
    EXPECT_LT(l.bytes_after * 3, l.bytes_before) << l.node;
  }
  EXPECT_EQ(int8.node("fc1").kind, "DynamicQuantLinear");
  Rng rng(3);
  const Tensor x = random_tensor(Shape{13, 67}, rng, -2.f, 3.f);
  EXPECT_LT(relative_error(run(int8, x), run(f32, x)), 0.02);

  // The layer alone against an independent computation: per-row u8 quantization of x as the
  // kernel contract says, times the dequantized weights, in double.
  nn::Graph single = mlp(2);
  compress::quantize_dynamic(single, {{"fc1"}, {}});
  const nn::Node& fc1 = single.node("fc1");
  std::vector<Tensor> in{x};
  nn::RunOptions options;
  Tensor fc1_out;
  options.after_node = [&](const nn::Node& node, std::span<const Tensor> outputs) {
    if (node.name == "fc1") fc1_out = outputs[0];
  };
  nn::forward(single, in, options);
  const Tensor w = dequantize_per_channel_int8({fc1.param("weight").value, fc1.param("weight_scale").value});
  for (int64_t r = 0; r < 13; ++r) {
    float lo = 0, hi = 0;
    for (int64_t j = 0; j < 67; ++j) lo = std::min(lo, x.data<float>()[r * 67 + j]), hi = std::max(hi, x.data<float>()[r * 67 + j]);
    const float scale = (hi - lo) / 127.f, zero = -std::nearbyint(lo / scale);
    for (int64_t c = 0; c < 45; ++c) {
      double acc = fc1.param("bias").value.data<float>()[c];
      for (int64_t j = 0; j < 67; ++j) {
        const float q = std::clamp(std::nearbyint(x.data<float>()[r * 67 + j] / scale) + zero, 0.f, 127.f);
        acc += double(q - zero) * scale * w.data<float>()[c * 67 + j];
      }
      EXPECT_NEAR(fc1_out.data<float>()[r * 45 + c], acc, 1e-4 * (1 + std::fabs(acc)));
    }
  }
}

TEST(DynamicQuant, RecurrentLayersStayCloseToF32) {
  for (const char* kind : {"LSTM", "GRU"}) {
    SCOPED_TRACE(kind);
    const int64_t gates = std::string(kind) == "LSTM" ? 4 : 3;
    std::vector<ParamSpec> params;
    for (int l = 0; l < 2; ++l) {
      const int64_t width = l == 0 ? 12 : 20;
      params.push_back({"weight_ih_l" + std::to_string(l), Shape{gates * 20, width}, true, -0.4f, 0.4f});
      params.push_back({"weight_hh_l" + std::to_string(l), Shape{gates * 20, 20}, true, -0.4f, 0.4f});
      params.push_back({"bias_ih_l" + std::to_string(l), Shape{gates * 20}, true, -0.4f, 0.4f});
      params.push_back({"bias_hh_l" + std::to_string(l), Shape{gates * 20}, true, -0.4f, 0.4f});
    }
    nn::Node node = make_node(kind, {{"input_size", 12}, {"hidden_size", 20}, {"num_layers", 2}}, params, 4);
    nn::Graph f32 = single_node_graph(node, {{Shape{-1, -1, 12}, DType::f32}});
    nn::Graph int8 = single_node_graph(node, {{Shape{-1, -1, 12}, DType::f32}});
    auto report = compress::quantize_dynamic(int8, {});
    ASSERT_TRUE(report.at(0).quantized);
    EXPECT_EQ(int8.nodes()[0].kind, std::string("DynamicQuant") + kind);
    Rng rng(5);
    const Tensor x = random_tensor(Shape{3, 9, 12}, rng, -1.5f, 1.5f);
    const Tensor a = run(int8, x), b = run(f32, x);
    double worst = 0;
    for (int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, double(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
    EXPECT_LT(worst, 0.03);  // hidden states lie in (-1, 1)
    EXPECT_GT(worst, 0.0) << "the int8 path really ran";
  }
}

TEST(DynamicQuant, SavedModelsReloadAndComputeTheSame) {
  ScratchDir dir;
  nn::Graph graph = mlp(6);
  compress::quantize_dynamic(graph, {});
  io::save_model(dir.file("q.safetensors"), graph, {});
  io::LoadedModel loaded = io::load_model(dir.file("q.safetensors"));
  EXPECT_EQ(loaded.graph.node("head").param("weight").value.dtype(), DType::i8);
  Rng rng(7);
  const Tensor x = random_tensor(Shape{4, 67}, rng);
  const Tensor a = run(graph, x), b = run(loaded.graph, x);
  ASSERT_EQ(a.numel(), b.numel());
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(a.data<float>()[i], b.data<float>()[i]);
}

// Convolutions stay f32 unless asked for (--conv, or by name); then they run as
// DynamicQuantConv2d.
TEST(DynamicQuant, ConvolutionsOnlyWhenAskedFor) {
  const auto make = [] {
    nn::GraphBuilder b(8);
    int x = b.input("x", Shape{-1, 1, 8, 8});
    x = b.op("flat", "Flatten", {b.conv2d("conv", x, 1, 4, 3)});
    b.output(b.linear("head", x, 4 * 6 * 6, 5));
    return b.take();
  };
  nn::Graph graph = make();
  EXPECT_FALSE(compress::quantizes_convolutions(graph, {}));
  EXPECT_TRUE(compress::quantizes_convolutions(graph, {{"conv"}, {}}));
  EXPECT_FALSE(compress::quantizes_convolutions(graph, {{"conv"}, {"conv"}})) << "excluded";
  EXPECT_TRUE(compress::quantizes_convolutions(graph, {{}, {}, true}));
  EXPECT_FALSE(compress::quantizes_convolutions(graph, {{"head"}, {}, true})) << "--conv, but --layers names none";
  auto report = compress::quantize_dynamic(graph, {});
  ASSERT_EQ(report.size(), 2u);
  EXPECT_FALSE(report[0].quantized);
  EXPECT_NE(report[0].reason.find("--conv"), std::string::npos) << report[0].reason;
  EXPECT_TRUE(report[1].quantized);
  EXPECT_EQ(graph.node("conv").kind, "Conv2d");

  nn::Graph named = make();
  report = compress::quantize_dynamic(named, {{"conv*"}, {}});
  EXPECT_EQ(named.node("conv").kind, "DynamicQuantConv2d");
  EXPECT_EQ(named.node("head").kind, "Linear") << "not named";
  EXPECT_EQ(named.node("conv").param("weight").value.shape(), (Shape{4, 1, 3, 3}));
  EXPECT_LT(report[0].bytes_after, report[0].bytes_before);

  nn::Graph all = make();
  compress::DynamicQuantConfig config;
  config.convolutions = true;
  compress::quantize_dynamic(all, config);
  EXPECT_EQ(all.node("conv").kind, "DynamicQuantConv2d");
  EXPECT_EQ(all.node("head").kind, "DynamicQuantLinear");

  nn::Graph fresh = make();
  EXPECT_THROW(compress::quantize_dynamic(fresh, {{"nothing*"}, {}}), UsageError);
  auto excluded = compress::quantize_dynamic(fresh, {{}, {"head"}});
  EXPECT_EQ(fresh.node("head").kind, "Linear");
  EXPECT_EQ(excluded[1].reason, "excluded");
}

// Embedding tables only when asked for (--embeddings, or by name): int8 per row, every looked-up
// value within half a step of its row's scale; a table tied to the output layer (one tensor) and
// that layer quantized together share one int8 tensor and its scales; a table int8 already is
// not reported again.
TEST(DynamicQuant, EmbeddingTablesPerRowOnlyWhenAskedFor) {
  constexpr int64_t kDim = 32;
  const auto make = [] {
    nn::GraphBuilder b(9);
    int ids = b.input("ids", Shape{-1, -1}, DType::i64);
    int x = b.embedding("embed", ids, 40, kDim);
    b.output(b.linear("head", x, kDim, 40, /*bias=*/false));
    nn::Graph g = b.take();
    g.node("head").param("weight").value = g.node("embed").param("weight").value;  // tied
    return g;
  };
  nn::Graph plain = make();
  auto report = compress::quantize_dynamic(plain, {});
  ASSERT_EQ(report.size(), 2u);
  EXPECT_FALSE(report[0].quantized);
  EXPECT_NE(report[0].reason.find("--embeddings"), std::string::npos) << report[0].reason;
  EXPECT_EQ(plain.node("embed").param("weight").value.dtype(), DType::f32);

  nn::Graph graph = make();
  const Tensor table = graph.node("embed").param("weight").value.clone();
  compress::DynamicQuantConfig config;
  config.embeddings = true;
  report = compress::quantize_dynamic(graph, config);
  ASSERT_TRUE(report[0].quantized && report[1].quantized);
  EXPECT_LT(report[0].bytes_after * 3, report[0].bytes_before);
  const nn::Node& embed = graph.node("embed");
  EXPECT_EQ(embed.kind, "Embedding");
  ASSERT_EQ(embed.param("weight").value.dtype(), DType::i8);
  EXPECT_EQ(embed.param("weight").value.raw_data(), graph.node("head").param("weight").value.raw_data()) << "shared";
  EXPECT_EQ(embed.param("weight_scale").value.raw_data(), graph.node("head").param("weight_scale").value.raw_data());
  Tensor ids = Tensor::uninitialized(Shape{1, 40}, DType::i64);
  for (int64_t i = 0; i < 40; ++i) ids.mutable_data<int64_t>()[i] = (i * 7) % 40;
  std::vector<Tensor> in{ids};
  graph.mark_output(embed.outputs[0]);  // the looked-up rows themselves
  const Tensor rows = nn::forward(graph, in).back();
  for (int64_t i = 0; i < 40; ++i) {
    const int64_t id = (i * 7) % 40;
    const float step = embed.param("weight_scale").value.data<float>()[id];
    for (int64_t d = 0; d < kDim; ++d)
      ASSERT_LE(std::fabs(rows.data<float>()[i * kDim + d] - table.data<float>()[id * kDim + d]), 0.5f * step + 1e-7f);
  }
  report = compress::quantize_dynamic(graph, config);
  EXPECT_TRUE(report.empty()) << "nothing f32 left to report";

  nn::Graph named = make();
  compress::quantize_dynamic(named, {{"embed"}, {}});
  EXPECT_EQ(named.node("embed").param("weight").value.dtype(), DType::i8);
  EXPECT_EQ(named.node("head").kind, "Linear") << "not named";
}

// A tied table and head quantized together hold one int8 tensor: the report counts it once (at the
// table) and says whose it is, so that the quantized layers' bytes sum to what the model holds;
// with the table left f32 the head's int8 weight is its own and counted in full.
TEST(DynamicQuant, TiedTableAndHeadCountTheirSharedWeightOnce) {
  constexpr int64_t kVocab = 40, kDim = 32;
  const auto make = [] {
    nn::GraphBuilder b(9);
    int ids = b.input("ids", Shape{-1, -1}, DType::i64);
    int x = b.embedding("embed", ids, kVocab, kDim);
    b.output(b.linear("head", x, kDim, kVocab, /*bias=*/true));
    nn::Graph g = b.take();
    g.node("head").param("weight").value = g.node("embed").param("weight").value;  // tied
    return g;
  };
  const int64_t f32_table = kVocab * kDim * 4, bias = kVocab * 4;
  const int64_t int8_table = kVocab * kDim + kVocab * 4;  // i8 values + an f32 scale per row
  nn::Graph both = make();
  compress::DynamicQuantConfig config;
  config.embeddings = true;
  auto report = compress::quantize_dynamic(both, config);
  ASSERT_EQ(report.size(), 2u);
  EXPECT_EQ(report[0].bytes_before, f32_table);
  EXPECT_EQ(report[0].bytes_after, int8_table);
  EXPECT_EQ(report[0].shares_weight_with, "");
  EXPECT_EQ(report[1].bytes_before, bias) << "the head's weight is counted at the table";
  EXPECT_EQ(report[1].bytes_after, bias);
  EXPECT_EQ(report[1].shares_weight_with, "embed");

  nn::Graph head_only = make();
  report = compress::quantize_dynamic(head_only, {});
  ASSERT_EQ(report.size(), 2u);
  ASSERT_FALSE(report[0].quantized);
  EXPECT_EQ(report[0].bytes_before, f32_table);
  EXPECT_EQ(report[1].bytes_before, f32_table + bias) << "quantized alone, the head's weight is its own";
  EXPECT_EQ(report[1].bytes_after, int8_table + bias);
  EXPECT_EQ(report[1].shares_weight_with, "");
}

// DynamicQuantConv2d against the f32 convolution over strides, padding, dilation, groups,
// rectangular kernels (a waveform's frames: 1 x 16 every 8), batches and a large image; each output position's
// inputs get their own 7-bit range, so the error stays a small fraction of the output's scale.
TEST(DynamicQuant, ConvolutionsFollowTheF32ConvolutionOverEveryGeometry) {
  struct Case {
    int64_t c, oc, h, w, n;
    nlohmann::json attrs;
  };
  const std::vector<Case> cases = {
      {3, 8, 9, 9, 2, {{"kernel_size", 3}, {"padding", 1}}},
      {4, 6, 11, 10, 3, {{"kernel_size", 3}, {"stride", 2}, {"dilation", 2}, {"padding", 2}}},
      {4, 6, 7, 7, 1, {{"kernel_size", 3}, {"groups", 2}, {"padding", 1}}},
      {1, 10, 1, 80, 5, {{"kernel_size", nlohmann::json::array({1, 16})}, {"stride", nlohmann::json::array({1, 8})}}},
      {5, 7, 1, 9, 1, {{"kernel_size", nlohmann::json::array({1, 3})}, {"padding", nlohmann::json::array({0, 1})}}},
      // one image of 16,900 positions: more than one block of rows
      {2, 4, 130, 130, 1, {{"kernel_size", 3}, {"padding", 1}}},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.attrs.dump());
    nlohmann::json attrs = k.attrs;
    attrs["in_channels"] = k.c;
    attrs["out_channels"] = k.oc;
    const int64_t groups = attrs.value("groups", 1);
    const auto kernel = attrs["kernel_size"].is_array() ? attrs["kernel_size"] : nlohmann::json::array({attrs["kernel_size"], attrs["kernel_size"]});
    const Shape weight{k.oc, k.c / groups, kernel[0].get<int64_t>(), kernel[1].get<int64_t>()};
    const nn::Node node = make_node("Conv2d", attrs, {{"weight", weight}, {"bias", Shape{k.oc}}}, 3);
    nn::Graph f32 = single_node_graph(node, {{Shape{-1, k.c, k.h, k.w}, DType::f32}});
    nn::Graph int8 = single_node_graph(node, {{Shape{-1, k.c, k.h, k.w}, DType::f32}});
    compress::DynamicQuantConfig config;
    config.convolutions = true;
    ASSERT_TRUE(compress::quantize_dynamic(int8, config).at(0).quantized);
    ASSERT_EQ(int8.nodes()[0].kind, "DynamicQuantConv2d");
    Rng rng(11);
    const Tensor x = random_tensor(Shape{k.n, k.c, k.h, k.w}, rng, -2.f, 2.f);
    const Tensor a = run(int8, x), b = run(f32, x);
    ASSERT_EQ(a.shape(), b.shape());
    const double error = relative_error(a, b);
    EXPECT_LT(error, 0.03);
    EXPECT_GT(error, 0.0) << "the int8 path really ran";
  }
}

}  // namespace
}  // namespace shrink::testing
