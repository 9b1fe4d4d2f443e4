// Static int8 quantization: batch-norm folding is exact, QuantConv2d matches a scalar reference
// within one step over strides, padding, dilation and groups, converted graphs track the f32 graph
// and reload bit for bit, and excluded layers stay f32 behind Dequantize/Quantize boundaries.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <tuple>

#include "nn/nn_test_support.h"
#include "shrink/compress/quantize_static.h"
#include "shrink/io/native_model.h"
#include "shrink/nn/builder.h"
#include "shrink/nn/execute.h"
#include "shrink/quant/int8_linear.h"
#include "compress/quant_test_models.h"
#include "test_support.h"

namespace shrink::testing {
namespace {

Tensor run(nn::Graph& graph, const Tensor& x) {
  std::vector<Tensor> in{x};
  return nn::forward(graph, in)[0];
}

TEST(StaticQuant, FoldingBatchNormsIsExact) {
  Rng rng(1);
  nn::Graph graph = small_cnn(2);
  randomize_batch_norms(graph, rng);
  nn::Graph folded = small_cnn(2);
  Rng same(1);
  randomize_batch_norms(folded, same);
  auto removed = compress::fold_batch_norms(folded);
  EXPECT_EQ(removed.size(), 4u);  // three batch norms and the dropout
  for (const nn::Node& node : folded.nodes()) EXPECT_FALSE(node.kind.starts_with("BatchNorm") || node.kind == "Dropout");
  const Tensor x = random_tensor(Shape{3, 2, 12, 12}, rng);
  const Tensor a = run(graph, x), b = run(folded, x);
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-4);
}

// One QuantConv2d against double arithmetic on the same integers: equal within one step.
void check_conv(int64_t c, int64_t oc, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                int64_t groups, int64_t batch) {
  SCOPED_TRACE(fmt::format("c{} oc{} k{} s{} p{} d{} g{} n{}", c, oc, kernel, stride, padding, dilation, groups, batch));
  Rng rng(uint64_t(c * 7 + oc + kernel + stride + padding + groups));
  const int64_t h = 9, w = 11;
  const Tensor weight = random_tensor(Shape{oc, c / groups, kernel, kernel}, rng);
  const Tensor bias = random_tensor(Shape{oc}, rng);
  const Int8ChannelWeights q = quantize_per_channel_int8(weight.reshape(Shape{oc, weight.numel() / oc}));
  const float in_scale = 0.05f, out_scale = 0.2f;
  const int32_t in_zero = 20, out_zero = 60;
  nn::Node node;
  node.name = "conv";
  node.kind = "QuantConv2d";
  node.attrs = {{"in_channels", c}, {"out_channels", oc}, {"kernel_size", kernel}, {"stride", stride},
                {"padding", padding}, {"dilation", dilation}, {"groups", groups}, {"relu", false},
                {"input_scale", in_scale}, {"input_zero", in_zero}, {"output_scale", out_scale},
                {"output_zero", out_zero}, {"output_dtype", "u8"}};
  node.params = {{"weight", q.q.reshape(weight.shape()), {}, false}, {"weight_scale", q.scale, {}, false},
                 {"bias", bias, {}, false}};
  nn::Graph graph = single_node_graph(node, {{Shape{-1, h, w, c}, DType::u8}});  // channels-last
  Tensor x = Tensor::empty(Shape{batch, h, w, c}, DType::u8);
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<uint8_t>()[i] = uint8_t(rng.below(128));
  const Tensor y = run(graph, x);
  const int64_t oh = (h + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
  const int64_t ow = (w + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
  ASSERT_EQ(y.shape(), (Shape{batch, oh, ow, oc}));
  const int64_t cg = c / groups, ocg = oc / groups;
  int exact = 0;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < oc; ++o)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double acc = 0;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t ky = 0; ky < kernel; ++ky)
              for (int64_t kx = 0; kx < kernel; ++kx) {
                const int64_t iy = oy * stride - padding + ky * dilation, ix = ox * stride - padding + kx * dilation;
                const int64_t channel = o / ocg * cg + ci;
                const int32_t v = iy >= 0 && iy < h && ix >= 0 && ix < w ? x.data<uint8_t>()[((n * h + iy) * w + ix) * c + channel] : in_zero;
                acc += double(v - in_zero) * q.q.data<int8_t>()[((o * cg + ci) * kernel + ky) * kernel + kx];
              }
          const double real = acc * in_scale * q.scale.data<float>()[o] + bias.data<float>()[o];
          const double want = std::clamp(std::nearbyint(real / out_scale) + out_zero, 0.0, 127.0);
          const int got = y.data<uint8_t>()[((n * oh + oy) * ow + ox) * oc + o];
          ASSERT_LE(std::fabs(got - want), 1.0) << n << " " << o << " " << oy << " " << ox;
          exact += got == int(want);
        }
  EXPECT_GT(exact, int(0.95 * double(y.numel())));
}

TEST(StaticQuant, QuantConv2dMatchesTheScalarReference) {
  check_conv(3, 4, 3, 1, 1, 1, 1, 2);
  check_conv(4, 6, 3, 2, 1, 1, 2, 5);   // strided, grouped, batch large enough for the per-image path
  check_conv(6, 6, 3, 1, 2, 2, 6, 1);   // depthwise, dilated
  check_conv(5, 7, 1, 1, 0, 1, 1, 3);   // 1x1, k not a multiple of 4
  check_conv(2, 3, 5, 2, 2, 1, 1, 4);   // 5x5
  check_conv(1, 8, 3, 1, 1, 1, 1, 4);   // one input channel: 3-byte kernel rows
  check_conv(32, 16, 3, 1, 1, 1, 1, 4); // 96-byte kernel rows
}

// The int8 region's channels-last u8 max pooling picks the same values as the f32 NCHW op,
// windows clipped at the borders included.
TEST(StaticQuant, U8MaxPoolingMatchesF32) {
  Rng rng(12);
  for (const auto& [kernel, stride, padding] : {std::tuple{2, 2, 0}, std::tuple{3, 2, 1}, std::tuple{3, 1, 1}}) {
    SCOPED_TRACE(fmt::format("k{} s{} p{}", kernel, stride, padding));
    const int64_t n = 2, h = 7, w = 6, c = 35;
    Tensor u8 = Tensor::empty(Shape{n, h, w, c}, DType::u8), f = Tensor::empty(Shape{n, c, h, w}, DType::f32);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x)
          for (int64_t ch = 0; ch < c; ++ch) {
            const uint8_t v = uint8_t(rng.below(128));
            u8.mutable_data<uint8_t>()[((i * h + y) * w + x) * c + ch] = v;
            f.mutable_data<float>()[((i * c + ch) * h + y) * w + x] = float(v);
          }
    const nlohmann::json attrs = {{"kernel_size", kernel}, {"stride", stride}, {"padding", padding}};
    nlohmann::json nhwc_attrs = attrs;
    nhwc_attrs["layout"] = "nhwc";
    nn::Graph int8 = single_node_graph(nn::Node{"pool", "MaxPool2d", nhwc_attrs, {}, {}, {}}, {{Shape{-1, h, w, c}, DType::u8}});
    nn::Graph f32 = single_node_graph(nn::Node{"pool", "MaxPool2d", attrs, {}, {}, {}}, {{Shape{-1, c, h, w}, DType::f32}});
    const Tensor got = run(int8, u8), want = run(f32, f);
    const int64_t oh = want.shape()[2], ow = want.shape()[3];
    ASSERT_EQ(got.shape(), (Shape{n, oh, ow, c}));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t x = 0; x < ow; ++x)
          for (int64_t ch = 0; ch < c; ++ch)
            ASSERT_EQ(float(got.data<uint8_t>()[((i * oh + y) * ow + x) * c + ch]),
                      want.data<float>()[((i * c + ch) * oh + y) * ow + x]);
  }
}

TEST(StaticQuant, ConvertedGraphTracksF32AndReloads) {
  Rng rng(3);
  nn::Graph graph = small_cnn(4);
  randomize_batch_norms(graph, rng);
  compress::fold_batch_norms(graph);
  ObserverConfig observer;
  observer.kind = ObserverKind::histogram;
  compress::Calibrator calibrator(observer);
  for (int batch = 0; batch < 4; ++batch) {
    std::vector<Tensor> in{random_tensor(Shape{8, 2, 12, 12}, rng)};
    calibrator.observe(graph, in);
  }
  compress::StaticQuantResult q = compress::convert_static(graph, calibrator, {});
  std::vector<std::string> kinds;
  for (const nn::Node& node : q.graph.nodes()) kinds.push_back(node.kind);
  const std::vector<std::string> expected{"Quantize", "QuantConv2d", "MaxPool2d", "QuantConv2d", "QuantConv2d",
                                          "QuantAdd", "Flatten", "QuantLinear", "QuantLinear"};
  EXPECT_EQ(kinds, expected);
  EXPECT_EQ(q.graph.node("head").attrs["output_dtype"], "f32") << "logits leave the int8 region in f32";
  const Tensor x = random_tensor(Shape{6, 2, 12, 12}, rng);
  std::vector<Tensor> in{x};
  for (const auto& e : compress::layer_errors(graph, q.graph, q.layers, in)) {
    EXPECT_GT(e.sqnr_db, 20.0) << e.node;
    EXPECT_GT(e.cosine, 0.99) << e.node;
  }
  ScratchDir dir;
  io::save_model(dir.file("q.safetensors"), q.graph, {});
  io::LoadedModel loaded = io::load_model(dir.file("q.safetensors"));
  const Tensor a = run(q.graph, x), b = run(loaded.graph, x);
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<float>()[i], b.data<float>()[i]);
}

TEST(StaticQuant, ExcludedLayersStayF32BehindBoundaries) {
  Rng rng(5);
  nn::Graph graph = small_cnn(6);
  compress::fold_batch_norms(graph);
  compress::Calibrator calibrator({});
  std::vector<Tensor> in{random_tensor(Shape{8, 2, 12, 12}, rng)};
  calibrator.observe(graph, in);
  compress::StaticQuantResult q = compress::convert_static(graph, calibrator, {{"block.conv2", "block.add"}});
  EXPECT_EQ(q.graph.node("block.conv2").kind, "Conv2d");
  EXPECT_EQ(q.graph.node("block.add").kind, "Add");
  EXPECT_GE(q.graph.node_index("block.relu1.dequantize"), 0);
  EXPECT_GE(q.graph.node_index("flatten.quantize"), 0);
  int kept = 0;
  for (const auto& l : q.layers) kept += l.quantized_kind.empty() && l.reason == "excluded";
  EXPECT_EQ(kept, 2);
  const Tensor a = run(graph, in[0]), b = run(q.graph, in[0]);
  double err = 0, peak = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    err = std::max(err, double(std::fabs(a.data<float>()[i] - b.data<float>()[i]))),
    peak = std::max(peak, double(std::fabs(a.data<float>()[i])));
  EXPECT_LT(err, 0.1 * peak);
  compress::Calibrator empty({});
  EXPECT_THROW(compress::convert_static(graph, empty, {}), UsageError) << "conversion needs calibration";
}

// Concat and AdaptiveAvgPool2d of u8 images stay int8 (no Dequantize inside the region), each
// concatenated input requantized to the Concat's own qparams; every layer tracks f32.
TEST(StaticQuant, ConcatAndAveragePoolingStayInt8) {
  Rng rng(12);
  nn::Graph graph = concat_pool_cnn(13);
  compress::Calibrator calibrator({});
  for (int batch = 0; batch < 3; ++batch) {
    std::vector<Tensor> in{random_tensor(Shape{6, 3, 10, 10}, rng)};
    calibrator.observe(graph, in);
  }
  compress::StaticQuantResult q = compress::convert_static(graph, calibrator, {});
  std::vector<std::string> kinds;
  for (const nn::Node& node : q.graph.nodes()) kinds.push_back(node.kind);
  const std::vector<std::string> expected{"Quantize", "QuantConv2d", "QuantConv2d", "QuantConv2d", "QuantConcat",
                                          "QuantConv2d", "QuantAdaptiveAvgPool2d", "Flatten", "QuantLinear"};
  EXPECT_EQ(kinds, expected);
  const nn::Node& join = q.graph.node("join");
  EXPECT_EQ(join.attrs["axis"], 3) << "channels are the last axis inside the region";
  EXPECT_NE(join.attrs["input_scales"][0], join.attrs["input_scales"][1]) << "inputs keep their own scales";
  const Tensor x = random_tensor(Shape{4, 3, 10, 10}, rng);
  std::vector<Tensor> in{x};
  int checked = 0;
  for (const auto& e : compress::layer_errors(graph, q.graph, q.layers, in)) {
    EXPECT_GT(e.sqnr_db, 20.0) << e.node;
    EXPECT_GT(e.cosine, 0.99) << e.node;
    checked += e.node == "join" || e.node == "pool";
  }
  EXPECT_EQ(checked, 2);
  const Tensor a = run(graph, x), b = run(q.graph, x);
  double err = 0, peak = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    err = std::max(err, double(std::fabs(a.data<float>()[i] - b.data<float>()[i]))),
    peak = std::max(peak, double(std::fabs(a.data<float>()[i])));
  EXPECT_LT(err, 0.05 * peak);
}

// The two ops on their own: requantized concatenation equals quantizing the dequantized inputs
// with the output's qparams; the pooled value is the window mean within half a step.
TEST(StaticQuant, QuantConcatAndPoolingArithmetic) {
  nn::Graph g;
  const int a = g.add_input("a", Shape{2, 3}, DType::u8), b = g.add_input("b", Shape{2, 2}, DType::u8);
  const int joined = g.add({"join", "QuantConcat",
                            {{"axis", 1}, {"input_scales", {0.1, 0.05}}, {"input_zeros", {10, 0}},
                             {"output_scale", 0.08}, {"output_zero", 5}},
                            {a, b}, {}, {}});
  g.mark_output(joined);
  Tensor ta = Tensor::uninitialized(Shape{2, 3}, DType::u8), tb = Tensor::uninitialized(Shape{2, 2}, DType::u8);
  const uint8_t va[] = {0, 10, 127, 50, 60, 70}, vb[] = {0, 127, 33, 90};
  std::copy(va, va + 6, ta.mutable_data<uint8_t>());
  std::copy(vb, vb + 4, tb.mutable_data<uint8_t>());
  const Tensor y = nn::forward(g, std::vector<Tensor>{ta, tb}).at(0);
  ASSERT_EQ(y.shape(), (Shape{2, 5}));
  for (int r = 0; r < 2; ++r)
    for (int j = 0; j < 5; ++j) {
      const double value = j < 3 ? (va[r * 3 + j] - 10) * 0.1 : vb[r * 2 + j - 3] * 0.05;
      const double expected = std::clamp(std::nearbyint(value / 0.08) + 5, 0.0, 127.0);
      EXPECT_EQ(y.data<uint8_t>()[r * 5 + j], uint8_t(expected)) << r << "," << j;
    }
  nn::Graph p;
  const int image = p.add_input("image", Shape{1, 3, 5, 2}, DType::u8);  // (N, H, W, C)
  p.mark_output(p.add({"pool", "QuantAdaptiveAvgPool2d",
                       {{"output_size", std::vector<int64_t>{2, 1}}, {"input_scale", 0.1}, {"input_zero", 3},
                        {"output_scale", 0.07}, {"output_zero", 1}},
                       {image}, {}, {}}));
  Tensor t = Tensor::uninitialized(Shape{1, 3, 5, 2}, DType::u8);
  for (int i = 0; i < 30; ++i) t.mutable_data<uint8_t>()[i] = uint8_t((i * 37) % 128);
  const Tensor pooled = nn::forward(p, std::vector<Tensor>{t}).at(0);
  ASSERT_EQ(pooled.shape(), (Shape{1, 2, 1, 2}));
  for (int oy = 0; oy < 2; ++oy)
    for (int ch = 0; ch < 2; ++ch) {
      const int y0 = oy * 3 / 2, y1 = ((oy + 1) * 3 + 1) / 2;  // rows [0, 2) and [1, 3)
      double sum = 0;
      for (int yy = y0; yy < y1; ++yy)
        for (int xx = 0; xx < 5; ++xx) sum += (t.data<uint8_t>()[(yy * 5 + xx) * 2 + ch] - 3) * 0.1;
      const double mean = sum / ((y1 - y0) * 5);
      const double got = (pooled.data<uint8_t>()[oy * 2 + ch] - 1) * 0.07;
      EXPECT_NEAR(got, mean, 0.5 * 0.07 + 1e-6) << oy << "," << ch;
    }
}

// The observers' state goes into the model file and back: a calibrator rebuilt from it (after a
// trip through JSON text) gives every value the same qparams, for every observer kind, and a
// state naming a value the graph lacks, or holding nothing, is refused.
TEST(StaticQuant, CalibrationStateRoundTripsThroughJson) {
  for (const char* kind : {"minmax", "moving_average", "histogram", "percentile", "entropy", "mse"}) {
    SCOPED_TRACE(kind);
    Rng rng(8);
    nn::Graph graph = small_cnn(7);
    compress::fold_batch_norms(graph);
    ObserverConfig observer;
    observer.kind = observer_kind_from_name(kind);
    compress::Calibrator calibrator(observer);
    for (int batch = 0; batch < 3; ++batch) {
      std::vector<Tensor> in{random_tensor(Shape{4, 2, 12, 12}, rng)};
      calibrator.observe(graph, in);
    }
    const nlohmann::json state = nlohmann::json::parse(calibrator.state(graph).dump());
    EXPECT_EQ(state["observer"], kind);
    EXPECT_EQ(state["batches"], 3);
    compress::Calibrator restored = compress::Calibrator::from_state(graph, state);
    EXPECT_EQ(restored.batches(), 3);
    int compared = 0;
    for (size_t v = 0; v < graph.values().size(); ++v) {
      if (!state["values"].contains(graph.values()[v].name)) continue;
      EXPECT_EQ(calibrator.qparams(int(v)), restored.qparams(int(v))) << graph.values()[v].name;
      ++compared;
    }
    EXPECT_GE(compared, 8);
    nlohmann::json foreign = state;
    foreign["values"]["no.such.value"] = state["values"].begin().value();
    EXPECT_THROW(compress::Calibrator::from_state(graph, foreign), UsageError);
    EXPECT_THROW(compress::Calibrator::from_state(graph, nlohmann::json::object()), UsageError);
  }
}

}  // namespace
}  // namespace shrink::testing
