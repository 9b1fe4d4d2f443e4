// Static int8 quantization: batch-norm folding, calibration, conversion into the int8 node kinds
// of src/ops/static_quant_ops.cpp, and the per-layer error report.
#include "shrink/compress/quantize_static.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <array>
#include <optional>

#include "shrink/compress/prune.h"
#include "shrink/core/error.h"
#include "shrink/kernels/int8_gemm.h"
#include "shrink/nn/execute.h"
#include "shrink/quant/int8_linear.h"

namespace shrink::compress {
namespace {

float* data(nn::Param& p) { return p.value.mutable_data<float>(); }

// The only consumer of a node's single output, when there is exactly one and it is not a graph
// output; else -1.
int sole_consumer(const nn::Graph& graph, int node_index) {
  const nn::Node& node = graph.nodes()[size_t(node_index)];
  if (node.outputs.size() != 1) return -1;
  const int value = node.outputs[0];
  if (std::count(graph.outputs().begin(), graph.outputs().end(), value)) return -1;
  const std::vector<int> consumers = graph.consumers(value);
  return consumers.size() == 1 ? consumers[0] : -1;
}

void fold_into(nn::Node& layer, const nn::Node& bn) {
  const int64_t channels = layer.param("weight").value.shape()[0];
  const int64_t per_channel = layer.param("weight").value.numel() / channels;
  if (!layer.find_param("bias")) layer.params.push_back({"bias", Tensor::empty(Shape{channels}, DType::f32), {}, true});
  nn::Param& weight = layer.param("weight");
  weight.value = weight.value.clone();
  nn::Param& bias = layer.param("bias");
  bias.value = bias.value.clone();
  const double eps = bn.attrs.value("eps", 1e-5);
  const float* gamma = bn.param("weight").value.data<float>();
  const float* beta = bn.param("bias").value.data<float>();
  const float* mean = bn.param("running_mean").value.data<float>();
  const float* var = bn.param("running_var").value.data<float>();
  for (int64_t c = 0; c < channels; ++c) {
    const double factor = double(gamma[c]) / std::sqrt(double(var[c]) + eps);
    for (int64_t j = 0; j < per_channel; ++j) data(weight)[c * per_channel + j] *= float(factor);
    data(bias)[c] = float((double(data(bias)[c]) - mean[c]) * factor + beta[c]);
  }
}

bool matches_any(const std::vector<std::string>& patterns, const std::string& name) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) { return name_matches(p, name); });
}

}  // namespace

std::vector<std::string> fold_batch_norms(nn::Graph& graph) {
  std::vector<std::string> folded;
  for (bool changed = true; changed;) {
    changed = false;
    for (int i = 0; i < int(graph.nodes().size()); ++i) {
      const nn::Node& node = graph.nodes()[size_t(i)];
      if (node.kind == "Dropout") {
        folded.push_back(node.name);
        graph.remove_node(node.name);
        changed = true;
        break;
      }
      const bool conv = node.kind == "Conv2d", linear = node.kind == "Linear";
      if (!conv && !linear) continue;
      const int next = sole_consumer(graph, i);
      if (next < 0) continue;
      const nn::Node& bn = graph.nodes()[size_t(next)];
      if (bn.kind != (conv ? "BatchNorm2d" : "BatchNorm1d")) continue;
      if (linear && graph.values()[size_t(node.outputs[0])].info.shape.rank() != 2) continue;
      nn::Node fused = node;
      fused.prepared = nullptr;
      fold_into(fused, bn);
      folded.push_back(bn.name);
      // The output keeps the batch norm's value name, so names recorded on a folded copy (QAT)
      // find the same activation in the unfolded graph.
      const std::string out_name = graph.values()[size_t(bn.outputs[0])].name, fused_name = node.name;
      graph.fuse_chain({node.name, bn.name}, std::move(fused));
      graph.set_value_name(graph.node(fused_name).outputs[0], out_name);
      changed = true;
      break;
    }
  }
  return folded;
}

Calibrator::Calibrator(ObserverConfig observer) : config_(std::move(observer)) {
  Observer::create(config_);  // validates the configuration now
}

void Calibrator::observe(nn::Graph& graph, std::span<const Tensor> inputs) {
  auto watch = [&](int value, const Tensor& t) {
    if (t.dtype() != DType::f32) return;
    auto& observer = observers_[value];
    if (!observer) observer = Observer::create(config_);
    observer->observe(t);
  };
  for (size_t i = 0; i < inputs.size() && i < graph.inputs().size(); ++i) watch(graph.inputs()[i], inputs[i]);
  nn::RunOptions options;
  options.after_node = [&](const nn::Node& node, std::span<const Tensor> outputs) {
    for (size_t i = 0; i < outputs.size(); ++i) watch(node.outputs[i], outputs[i]);
  };
  nn::forward(graph, inputs, options);
  ++batches_;
}

std::pair<float, int32_t> Calibrator::qparams(int value) const {
  auto it = observers_.find(value);
  if (it == observers_.end()) throw UsageError(fmt::format("value {} was not observed in calibration", value), "calibration");
  const ObservedRange range = it->second->range(u8_activation_scheme());  // what histogram searches optimise for
  const U8QParams q = u8_activation_qparams(range.low.data<float>()[0], range.high.data<float>()[0]);
  return {q.scale, q.zero};
}

nlohmann::json Calibrator::state(const nn::Graph& graph) const {
  nlohmann::json values = nlohmann::json::object();
  for (const auto& [value, observer] : observers_) values[graph.values()[size_t(value)].name] = observer->to_json();
  return {{"observer", std::string(observer_kind_name(config_.kind))}, {"batches", batches_}, {"values", values}};
}

Calibrator Calibrator::from_state(const nn::Graph& graph, const nlohmann::json& state) try {
  if (!state.is_object() || !state.contains("values") || !state["values"].is_object() || state["values"].empty() ||
      !state.contains("observer") || !state["observer"].is_string())
    throw UsageError("the calibration state holds no observers", "calibration");
  ObserverConfig config;
  config.kind = observer_kind_from_name(state["observer"].get<std::string>());
  Calibrator calibrator(config);
  std::map<std::string, int> by_name;
  for (size_t v = 0; v < graph.values().size(); ++v) by_name[graph.values()[v].name] = int(v);
  for (const auto& [name, observer] : state["values"].items()) {
    auto it = by_name.find(name);
    if (it == by_name.end())
      throw UsageError(fmt::format("the calibration state observed '{}', which this model does not have", name), "calibration");
    calibrator.observers_[it->second] = Observer::from_json(observer);
  }
  calibrator.batches_ = state.value("batches", int64_t(0));
  return calibrator;
} catch (const nlohmann::json::exception& e) {  // a stored state of the wrong shape: the file's fault
  throw FormatError(fmt::format("the calibration state is malformed: {}", e.what()));
}

namespace {

// Builds the int8 graph node by node, tracking how each f32 value of the source is represented.
class Converter {
 public:
  Converter(const nn::Graph& source, const ActivationQParamsSource& calibration) : source_(source), calibration_(calibration) {}

  nn::Graph& graph() { return graph_; }

  void add_input(int value) {
    const nn::Value& v = source_.values()[size_t(value)];
    set(value, graph_.add_input(v.name, v.info.shape, v.info.dtype), false);
  }

  // Images (rank 4) are channels-last while u8 and NCHW while f32.
  bool is_image(int value) const { return source_.values()[size_t(value)].info.shape.rank() == 4; }

  // The value as f32 (inserting a Dequantize once when it is u8).
  int as_f32(int value) {
    Repr& r = values_.at(value);
    if (!r.u8) return r.id;
    if (r.hwc) throw UsageError("a channels-last flattened value cannot leave the int8 region", "convert_static");
    if (!r.f32_copy) {
      nn::Node node{source_.values()[size_t(value)].name + ".dequantize", "Dequantize",
                    {{"scale", r.scale}, {"zero", r.zero}}, {r.id}, {}, {}};
      if (is_image(value)) node.attrs["layout"] = "nhwc_to_nchw";
      r.f32_copy = graph_.add(std::move(node));
    }
    return *r.f32_copy;
  }
  // The value as u8 with its calibrated qparams (inserting a Quantize once when it is f32).
  int as_u8(int value) {
    Repr& r = values_.at(value);
    if (r.u8) return r.id;
    if (!r.u8_copy) {
      auto [scale, zero] = calibration_.qparams(value);
      nn::Node node{source_.values()[size_t(value)].name + ".quantize", "Quantize", {{"scale", scale}, {"zero", zero}},
                    {r.id}, {}, {}};
      if (is_image(value)) node.attrs["layout"] = "nchw_to_nhwc";
      r.u8_copy = graph_.add(std::move(node));
      r.u8_scale = scale, r.u8_zero = zero;
    }
    return *r.u8_copy;
  }
  std::pair<float, int32_t> u8_qparams(int value) const {
    const Repr& r = values_.at(value);
    return r.u8 ? std::pair{r.scale, r.zero} : std::pair{r.u8_scale, r.u8_zero};
  }
  bool is_u8(int value) const { return values_.at(value).u8; }
  // (C, H, W) when the u8 value is a channels-last image flattened in (H, W, C) order.
  std::optional<std::array<int64_t, 3>> flattened_hwc(int value) const { return values_.at(value).hwc; }
  void mark_flattened_hwc(int value, std::array<int64_t, 3> chw) { values_.at(value).hwc = chw; }

  void set(int value, int id, bool u8, float scale = 1.f, int32_t zero = 0) {
    Repr r;
    r.id = id, r.u8 = u8, r.scale = scale, r.zero = zero;
    values_[value] = r;
  }

 private:
  struct Repr {
    int id = -1;
    bool u8 = false;
    float scale = 1.f;  // when u8
    int32_t zero = 0;
    std::optional<int> f32_copy, u8_copy;
    std::optional<std::array<int64_t, 3>> hwc;
    float u8_scale = 1.f;
    int32_t u8_zero = 0;
  };
  const nn::Graph& source_;
  const ActivationQParamsSource& calibration_;
  nn::Graph graph_;
  std::map<int, Repr> values_;
};

// A Linear reading a flattened (C, H, W) image, rewritten to read it flattened as (H, W, C).
void permute_chw_to_hwc(nn::Node& linear, const std::array<int64_t, 3>& chw) {
  nn::Param& w = linear.param("weight");
  const int64_t out = w.value.shape()[0], c = chw[0], h = chw[1], width = chw[2];
  if (w.value.shape()[1] != c * h * width) throw UsageError("flattened size does not match", linear.name);
  w.value = w.value.contiguous().reshape(Shape{out, c, h, width}).transpose(1, 2).transpose(2, 3).contiguous()
                .reshape(Shape{out, c * h * width});
}

nn::Node quantized_layer(const nn::Node& layer, bool relu, std::pair<float, int32_t> input, bool f32_out,
                         std::pair<float, int32_t> output, int weight_bits) {
  nn::Node q;
  q.name = layer.name;
  q.kind = layer.kind == "Conv2d" ? "QuantConv2d" : "QuantLinear";
  q.attrs = layer.attrs;
  q.attrs.erase("weight_bits");  // QAT's weight fake quantization, now real
  q.attrs["relu"] = relu;
  q.attrs["input_scale"] = input.first;
  q.attrs["input_zero"] = input.second;
  q.attrs["output_dtype"] = f32_out ? "f32" : "u8";
  if (!f32_out) {
    q.attrs["output_scale"] = output.first;
    q.attrs["output_zero"] = output.second;
  }
  const Tensor& w = layer.param("weight").value;
  const Int8ChannelWeights weights =
      quantize_per_channel_int8(w.contiguous().reshape(Shape{w.shape()[0], w.numel() / w.shape()[0]}), weight_bits);
  q.params.push_back({"weight", weights.q.reshape(w.shape()), {}, false});
  q.params.push_back({"weight_scale", weights.scale, {}, false});
  if (const nn::Param* b = layer.find_param("bias")) q.params.push_back({"bias", b->value, {}, false});
  return q;
}

}  // namespace

namespace {

// AdaptiveAvgPool2d or Concat whose inputs are all u8 already, all images or all not (a
// channels-last image flattened for a Linear stays out: its order is the Linear's business).
bool structural_fits(const Converter& c, const nn::Node& node) {
  const bool pooling = node.kind == "AdaptiveAvgPool2d";  // images only
  for (int in : node.inputs)
    if (!c.is_u8(in) || c.flattened_hwc(in) || c.is_image(in) != c.is_image(node.inputs[0]) ||
        (pooling && !c.is_image(in)))
      return false;
  if (node.kind == "Concat") {
    const nlohmann::json& axis = node.attrs.contains("axis") ? node.attrs.at("axis") : nlohmann::json(1);
    if (!axis.is_number_integer()) return false;
  }
  return !node.inputs.empty();
}

}  // namespace

StaticQuantResult convert_static(const nn::Graph& source, const ActivationQParamsSource& calibration,
                                 const StaticQuantConfig& config) {
  StaticQuantResult result;
  Converter c(source, calibration);
  for (int input : source.inputs()) c.add_input(input);
  const auto& nodes = source.nodes();
  std::vector<bool> done(nodes.size(), false);
  auto is_output = [&](int value) { return std::count(source.outputs().begin(), source.outputs().end(), value) > 0; };
  for (int i = 0; i < int(nodes.size()); ++i) {
    if (done[size_t(i)]) continue;
    const nn::Node& node = nodes[size_t(i)];
    StaticQuantLayer layer{node.name, node.kind, "", "", ""};
    const bool layer_kind = node.kind == "Conv2d" || node.kind == "Linear";
    const bool add_kind = node.kind == "Add";
    const bool excluded = matches_any(config.exclude, node.name);
    if ((layer_kind || add_kind) && !excluded &&
        !(node.kind == "Linear" && source.values()[size_t(node.inputs[0])].info.shape.rank() != 2)) {
      int last = i;
      const int next = sole_consumer(source, i);
      bool relu = false;
      if (next >= 0 && nodes[size_t(next)].kind == "ReLU") {
        relu = true;
        last = next;
        done[size_t(next)] = true;
        layer.kind += "+ReLU";
      }
      const int out_value = nodes[size_t(last)].outputs[0];
      const bool f32_out = layer_kind && is_output(out_value);
      const auto output = f32_out ? std::pair<float, int32_t>{1.f, 0} : calibration.qparams(out_value);
      int id = -1;
      if (layer_kind) {
        nn::Node source_layer = node;
        if (const auto chw = c.flattened_hwc(node.inputs[0])) permute_chw_to_hwc(source_layer, *chw);
        nn::Node q = quantized_layer(source_layer, relu, {}, f32_out, output, config.weight_bits);
        q.inputs = {c.as_u8(node.inputs[0])};
        const auto input = c.u8_qparams(node.inputs[0]);
        q.attrs["input_scale"] = input.first;
        q.attrs["input_zero"] = input.second;
        id = c.graph().add(std::move(q));
      } else {
        const int a = c.as_u8(node.inputs[0]), b = c.as_u8(node.inputs[1]);
        const auto qa = c.u8_qparams(node.inputs[0]), qb = c.u8_qparams(node.inputs[1]);
        nn::Node q{node.name, "QuantAdd",
                   {{"a_scale", qa.first}, {"a_zero", qa.second}, {"b_scale", qb.first}, {"b_zero", qb.second},
                    {"output_scale", output.first}, {"output_zero", output.second}, {"relu", relu}},
                   {a, b}, {}, {}};
        id = c.graph().add(std::move(q));
      }
      c.graph().set_value_name(id, source.values()[size_t(out_value)].name);
      c.set(out_value, id, !f32_out, output.first, output.second);
      layer.quantized_kind = c.graph().nodes().back().kind;
      layer.output_value = source.values()[size_t(out_value)].name;
      result.layers.push_back(layer);
      continue;
    }
    // Average pooling and concatenation of values already u8 (channels-last images, or rows) stay
    // in the region: the output gets its own calibrated qparams, each input is requantized to them.
    if (!excluded && (node.kind == "AdaptiveAvgPool2d" || node.kind == "Concat") && structural_fits(c, node)) {
      const int out_value = node.outputs[0];
      const auto output = calibration.qparams(out_value);
      nn::Node q{node.name, "Quant" + node.kind, {{"output_scale", output.first}, {"output_zero", output.second}}, {}, {}, {}};
      if (node.kind == "AdaptiveAvgPool2d") {
        const auto in = c.u8_qparams(node.inputs[0]);
        q.attrs.update({{"output_size", node.attrs.at("output_size")}, {"input_scale", in.first}, {"input_zero", in.second}});
      } else {
        const int rank = source.values()[size_t(node.inputs[0])].info.shape.rank();
        int64_t axis = node.attrs.value("axis", int64_t(1));
        if (axis < 0) axis += rank;
        if (c.is_image(node.inputs[0])) axis = std::array<int64_t, 4>{0, 3, 1, 2}[size_t(axis)];  // NCHW -> NHWC
        nlohmann::json scales = nlohmann::json::array(), zeros = nlohmann::json::array();
        for (int in : node.inputs) {
          scales.push_back(c.u8_qparams(in).first);
          zeros.push_back(c.u8_qparams(in).second);
        }
        q.attrs.update({{"axis", axis}, {"input_scales", scales}, {"input_zeros", zeros}});
      }
      for (int in : node.inputs) q.inputs.push_back(c.as_u8(in));
      const int id = c.graph().add(std::move(q));
      c.graph().set_value_name(id, source.values()[size_t(out_value)].name);
      c.set(out_value, id, true, output.first, output.second);
      layer.quantized_kind = c.graph().nodes().back().kind;
      layer.output_value = source.values()[size_t(out_value)].name;
      result.layers.push_back(layer);
      continue;
    }
    // Runs on u8 unchanged when its input already is: the max and reshapes commute with
    // quantization. Flattening a channels-last image gives (H, W, C) order, so it passes through
    // only when every consumer is a Linear that will be quantized (its columns get permuted).
    bool passthrough = node.kind == "MaxPool2d" && c.is_u8(node.inputs[0]) && c.is_image(node.inputs[0]);
    std::optional<std::array<int64_t, 3>> chw;
    if (node.kind == "Flatten" && c.is_u8(node.inputs[0]) && c.is_image(node.inputs[0])) {
      const Shape& in_shape = source.values()[size_t(node.inputs[0])].info.shape;
      bool all_linear = !is_output(node.outputs[0]) && in_shape[1] > 0 && in_shape[2] > 0 && in_shape[3] > 0;
      for (int consumer : source.consumers(node.outputs[0]))
        all_linear = all_linear && nodes[size_t(consumer)].kind == "Linear" && !matches_any(config.exclude, nodes[size_t(consumer)].name);
      passthrough = all_linear;
      if (passthrough) chw = std::array<int64_t, 3>{in_shape[1], in_shape[2], in_shape[3]};
    }
    nn::Node copy = node;
    copy.prepared = nullptr;
    copy.outputs.clear();
    copy.inputs.clear();
    if (passthrough && node.kind == "MaxPool2d") copy.attrs["layout"] = "nhwc";
    for (int in : node.inputs) copy.inputs.push_back(passthrough ? c.as_u8(in) : c.as_f32(in));
    const auto qparams = passthrough ? c.u8_qparams(node.inputs[0]) : std::pair<float, int32_t>{1.f, 0};
    const std::vector<int> outs = c.graph().add_node(std::move(copy));
    for (size_t o = 0; o < outs.size(); ++o) {
      c.graph().set_value_name(outs[o], source.values()[size_t(node.outputs[o])].name);
      c.set(node.outputs[o], outs[o], passthrough, qparams.first, qparams.second);
    }
    if (chw) c.mark_flattened_hwc(node.outputs[0], *chw);
    if (layer_kind || add_kind) {
      layer.reason = excluded ? "excluded" : "no int8 kernel for this shape";
      result.layers.push_back(layer);
    }
  }
  for (int out : source.outputs()) c.graph().mark_output(c.as_f32(out));
  c.graph().validate();
  result.graph = std::move(c.graph());
  return result;
}

namespace {

// Every node output of a run, by value name.
std::map<std::string, Tensor> value_outputs(nn::Graph& graph, std::span<const Tensor> inputs) {
  std::map<std::string, Tensor> outputs;
  nn::RunOptions options;
  options.after_node = [&](const nn::Node& node, std::span<const Tensor> out) {
    for (size_t i = 0; i < out.size(); ++i) outputs[graph.values()[size_t(node.outputs[i])].name] = out[i];
  };
  nn::forward(graph, inputs, options);
  return outputs;
}

}  // namespace

std::vector<LayerError> layer_errors(nn::Graph& f32, nn::Graph& quantized, const std::vector<StaticQuantLayer>& layers,
                                     std::span<const Tensor> inputs) {
  const auto reference = value_outputs(f32, inputs), ours = value_outputs(quantized, inputs);
  std::vector<LayerError> errors;
  for (const StaticQuantLayer& layer : layers) {
    if (layer.quantized_kind.empty()) continue;
    const nn::Node& q = quantized.node(layer.node);
    const Tensor& got = ours.at(layer.output_value);
    const Tensor& want = reference.at(layer.output_value);
    double signal = 0, noise = 0, dot = 0, norm_a = 0, norm_b = 0;
    const bool u8 = got.dtype() == DType::u8;
    const float scale = u8 ? float(q.attrs.at("output_scale").get<double>()) : 1.f;
    const int32_t zero = u8 ? q.attrs.at("output_zero").get<int32_t>() : 0;
    const bool channels_last = u8 && got.rank() == 4;  // images in the int8 region
    const Shape& s = want.shape();
    for (int64_t i = 0; i < want.numel(); ++i) {
      const int64_t j = channels_last ? nhwc_index(s, i) : i;
      const double a = want.data<float>()[i];
      const double b = u8 ? double(int32_t(got.data<uint8_t>()[j]) - zero) * scale : got.data<float>()[i];
      signal += a * a, noise += (a - b) * (a - b), dot += a * b, norm_a += a * a, norm_b += b * b;
    }
    errors.push_back({layer.node, layer.output_value, 10 * std::log10(signal / std::max(noise, 1e-30)),
                      dot / std::max(std::sqrt(norm_a * norm_b), 1e-30)});
  }
  return errors;
}

}  // namespace shrink::compress
