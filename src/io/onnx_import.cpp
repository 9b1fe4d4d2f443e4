// ONNX networks shrink knows, rebuilt from its own ops (see onnx_import.h).
#include "shrink/io/onnx_import.h"

#include <fmt/format.h>

#include <optional>

#include "io/onnx_reader.h"
#include "shrink/core/mapped_file.h"

namespace shrink::io {
namespace {

constexpr const char* kStftBasis = "stft.forward_basis_buffer";

// The Silero VAD weights of one branch: names under a prefix (the ONNX exporter's inlined-branch
// prefix), shapes checked.
class SileroWeights {
 public:
  SileroWeights(const OnnxModel& model, std::string prefix, std::string path)
      : model_(model), prefix_(std::move(prefix)), path_(std::move(path)) {}
  Tensor get(const std::string& name, const Shape& shape) const {
    auto it = model_.tensors.find(prefix_ + name);
    if (it == model_.tensors.end())
      throw FormatError(fmt::format("Silero VAD weight '{}' is missing", name), path_);
    if (it->second.shape() != shape)
      throw FormatError(fmt::format("Silero VAD weight '{}' has shape {}, expected {}", name,
                                    it->second.shape().to_string(), shape.to_string()),
                        path_);
    return it->second;
  }

 private:
  const OnnxModel& model_;
  std::string prefix_, path_;
};

// The prefix of the 16 kHz branch's weights (empty when they are not inside a branch): where the
// STFT basis with 258 outputs of 256 taps is.
std::optional<std::string> find_silero_16k(const OnnxModel& model) {
  for (const auto& [name, tensor] : model.tensors)
    if (name.ends_with(kStftBasis) && tensor.shape() == Shape{258, 1, 256})
      return name.substr(0, name.size() - std::string_view(kStftBasis).size());
  return std::nullopt;
}

nn::Node conv(const std::string& name, int x, const Tensor& weight, const Tensor* bias, int64_t stride,
              int64_t padding) {
  const Shape& w = weight.shape();  // (out, in, taps), a Conv1d: here a Conv2d of height 1
  nn::Node node{name,
                "Conv2d",
                {{"in_channels", w[1]},
                 {"out_channels", w[0]},
                 {"kernel_size", {1, w[2]}},
                 {"stride", {1, stride}},
                 {"padding", {0, padding}}},
                {x},
                {},
                {}};
  node.params.push_back({"weight", weight.reshape(Shape{w[0], w[1], 1, w[2]}), {}, true});
  if (bias) node.params.push_back({"bias", *bias, {}, true});
  return node;
}

nn::Graph build_silero_vad(const SileroWeights& w) {
  nn::Graph g;
  int x = g.add_input("frames", Shape{-1, 1, 1, 640});
  x = g.add(conv("stft", x, w.get(kStftBasis, Shape{258, 1, 256}), nullptr, 128, 0));
  x = g.add(nn::Node{"stft.magnitude", "ComplexMagnitude", {}, {x}, {}, {}});
  const int64_t widths[5] = {129, 128, 64, 64, 128}, strides[4] = {1, 2, 2, 1};
  for (int j = 0; j < 4; ++j) {
    const std::string name = fmt::format("encoder.{}.reparam_conv", j);
    const Tensor bias = w.get(name + ".bias", Shape{widths[j + 1]});
    x = g.add(conv(name, x, w.get(name + ".weight", Shape{widths[j + 1], widths[j], 3}), &bias, strides[j], 1));
    x = g.add(nn::Node{fmt::format("encoder.{}.activation", j), "ReLU", {}, {x}, {}, {}});
  }
  x = g.add(nn::Node{"decoder.flatten", "Flatten", {}, {x}, {}, {}});
  x = g.add(nn::Node{"decoder.sequence", "Reshape", {{"shape", {1, -1, 128}}}, {x}, {}, {}});
  nn::Node rnn{"decoder.rnn", "LSTM", {{"input_size", 128}, {"hidden_size", 128}, {"num_layers", 1}}, {x}, {}, {}};
  for (const char* name : {"weight_ih", "weight_hh"})
    rnn.params.push_back({std::string(name) + "_l0", w.get(std::string("decoder.rnn.") + name, Shape{512, 128}), {}, true});
  for (const char* name : {"bias_ih", "bias_hh"})
    rnn.params.push_back({std::string(name) + "_l0", w.get(std::string("decoder.rnn.") + name, Shape{512}), {}, true});
  x = g.add(std::move(rnn));
  x = g.add(nn::Node{"decoder.decoder.1", "ReLU", {}, {x}, {}, {}});
  nn::Node out{"decoder.decoder.2", "Linear", {{"in_features", 128}, {"out_features", 1}}, {x}, {}, {}};
  out.params.push_back({"weight", w.get("decoder.decoder.2.weight", Shape{1, 128, 1}).reshape(Shape{1, 128}), {}, true});
  out.params.push_back({"bias", w.get("decoder.decoder.2.bias", Shape{1}), {}, true});
  x = g.add(std::move(out));
  x = g.add(nn::Node{"decoder.decoder.3", "Sigmoid", {}, {x}, {}, {}});
  g.mark_output(x);
  return g;
}

}  // namespace

LoadedModel import_onnx(const std::string& path) { return import_onnx(read_onnx(*map_file(path)), path); }

LoadedModel import_onnx(const OnnxModel& model, const std::string& path) {
  const std::optional<std::string> prefix = find_silero_16k(model);
  if (!prefix) {
    std::vector<std::string> ops;
    for (const auto& [op, count] : model.op_counts) ops.push_back(fmt::format("{} x{}", op, count));
    throw UnsupportedError("an ONNX network shrink does not know", path,
                           fmt::format("shrink imports Silero VAD v5 from ONNX; this graph ({}, ir {}, opset {}) "
                                       "has {}",
                                       model.producer.empty() ? "no producer" : model.producer, model.ir_version,
                                       model.opset, fmt::join(ops, ", ")));
  }
  LoadedModel loaded;
  loaded.graph = build_silero_vad(SileroWeights(model, *prefix, path));
  loaded.provenance = {{"source", "onnx"},
                       {"architecture", "silero-vad-5"},
                       {"file", path},
                       {"producer", model.producer},
                       {"config", {{"arch", "silero-vad-5"}}},
                       {"audio", {{"sample_rate", 16000}, {"chunk", 512}, {"context", 64}}}};
  return loaded;
}

}  // namespace shrink::io
