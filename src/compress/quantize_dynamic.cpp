// Dynamic int8 quantization: rewrites Linear -> DynamicQuantLinear, LSTM/GRU -> DynamicQuantLSTM/GRU,
// and when asked Conv2d -> DynamicQuantConv2d.
#include "shrink/compress/quantize_dynamic.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "shrink/compress/prune.h"
#include "shrink/core/error.h"
#include "shrink/quant/int8_linear.h"

namespace shrink::compress {
namespace {

bool matches_any(const std::vector<std::string>& patterns, const std::string& name) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) { return name_matches(p, name); });
}

// Replaces f32 weight `name` by name (i8) + name_scale (f32): per output channel (the first axis;
// a convolution's (OC, C/groups, KH, KW) as OC rows).
void quantize_weight_param(const nn::Param& weight, std::vector<nn::Param>& out) {
  const Tensor w = weight.value.contiguous();
  const Int8ChannelWeights q = quantize_per_channel_int8(w.reshape(Shape{w.shape()[0], w.numel() / w.shape()[0]}));
  out.push_back({weight.name, q.q.reshape(w.shape()), Tensor(), false});
  out.push_back({weight.name + "_scale", q.scale, Tensor(), false});
}

nn::Node quantized_node(const nn::Node& node) {
  nn::Node q;
  q.name = node.name;
  q.kind = "DynamicQuant" + node.kind;
  q.attrs = node.attrs;
  for (const nn::Param& p : node.params) {
    if (p.name.starts_with("weight")) {
      quantize_weight_param(p, q.params);
    } else {
      q.params.push_back({p.name, p.value, Tensor(), false});
    }
  }
  return q;
}

// Why quantize_dynamic leaves `node` f32, or "" when it quantizes it; nullopt for the kinds it does
// not report. A convolution only when asked for: by `convolutions`, or by name in `layers`.
std::optional<std::string> reason_left_f32(const nn::Node& node, const DynamicQuantConfig& config) {
  const bool named = !config.layers.empty() && matches_any(config.layers, node.name);
  const bool convolution = node.kind == "Conv2d" && (config.convolutions || named);
  const bool eligible = node.kind == "Linear" || node.kind == "LSTM" || node.kind == "GRU" || convolution;
  if (!eligible && node.kind != "Conv2d" && node.kind != "Embedding") return std::nullopt;
  if (!eligible) return node.kind == "Conv2d" ? "convolution: --conv, or --method static" : "embeddings stay f32";
  if (!config.layers.empty() && !named) return "not named by --layers";
  if (matches_any(config.exclude, node.name)) return "excluded";
  return "";
}

}  // namespace

bool quantizes_convolutions(const nn::Graph& graph, const DynamicQuantConfig& config) {
  return std::any_of(graph.nodes().begin(), graph.nodes().end(), [&](const nn::Node& node) {
    return node.kind == "Conv2d" && reason_left_f32(node, config) == "";
  });
}

std::vector<DynamicQuantLayer> quantize_dynamic(nn::Graph& graph, const DynamicQuantConfig& config) {
  std::vector<DynamicQuantLayer> report;
  std::vector<std::string> to_quantize;
  for (const nn::Node& node : graph.nodes()) {
    const std::optional<std::string> reason = reason_left_f32(node, config);
    if (!reason) continue;
    DynamicQuantLayer layer;
    layer.node = node.name;
    layer.kind = node.kind;
    layer.bytes_before = layer.bytes_after = node.param_bytes();
    layer.reason = *reason;
    layer.quantized = reason->empty();
    if (layer.quantized) to_quantize.push_back(node.name);
    report.push_back(layer);
  }
  if (!config.layers.empty() && to_quantize.empty())
    throw UsageError("--layers matches no Linear, Conv2d, LSTM or GRU layer", "quantize --method dynamic");
  for (const std::string& name : to_quantize) {
    graph.replace_node(name, quantized_node(graph.node(name)));
    auto it = std::find_if(report.begin(), report.end(), [&](const DynamicQuantLayer& l) { return l.node == name; });
    it->bytes_after = graph.node(name).param_bytes();
  }
  return report;
}

}  // namespace shrink::compress
