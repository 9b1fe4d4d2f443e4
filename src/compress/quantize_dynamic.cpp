// Dynamic int8 quantization: rewrites Linear -> DynamicQuantLinear, LSTM/GRU -> DynamicQuantLSTM/GRU,
// and when asked Conv2d -> DynamicQuantConv2d and Embedding tables to int8 per row (the node stays
// an Embedding: it reads weight i8 + weight_scale, as a language model's table shared with its int8
// output layer does; a lookup has no activations to quantize).
#include "shrink/compress/quantize_dynamic.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>

#include "shrink/compress/prune.h"
#include "shrink/core/error.h"
#include "shrink/quant/int8_linear.h"

namespace shrink::compress {
namespace {

bool matches_any(const std::vector<std::string>& patterns, const std::string& name) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) { return name_matches(p, name); });
}

// The int8 weights made so far, by the f32 tensor they came from: a language model's embedding
// table and its tied output layer are one tensor, and per row of the table is per output channel
// of the layer, so both get the same int8 tensor and scales (stored once, as before).
using QuantizedWeights = std::map<const void*, std::pair<Tensor, Tensor>>;

// Replaces f32 weight `name` by name (i8) + name_scale (f32): per output channel (the first axis;
// a convolution's (OC, C/groups, KH, KW) as OC rows; an embedding table's rows).
void quantize_weight_param(const nn::Param& weight, std::vector<nn::Param>& out, QuantizedWeights& made) {
  const void* source = weight.value.raw_data();
  auto it = made.find(source);
  if (it == made.end() || it->second.first.shape() != weight.value.shape()) {
    const Tensor w = weight.value.contiguous();
    const Int8ChannelWeights q = quantize_per_channel_int8(w.reshape(Shape{w.shape()[0], w.numel() / w.shape()[0]}));
    it = made.insert_or_assign(source, std::pair{q.q.reshape(w.shape()), q.scale}).first;
  }
  out.push_back({weight.name, it->second.first, Tensor(), false});
  out.push_back({weight.name + "_scale", it->second.second, Tensor(), false});
}

nn::Node quantized_node(const nn::Node& node, QuantizedWeights& made) {
  nn::Node q;
  q.name = node.name;
  q.kind = node.kind == "Embedding" ? node.kind : "DynamicQuant" + node.kind;
  q.attrs = node.attrs;
  for (const nn::Param& p : node.params) {
    if (p.name.starts_with("weight")) {
      quantize_weight_param(p, q.params, made);
    } else {
      q.params.push_back({p.name, p.value, Tensor(), false});
    }
  }
  return q;
}

// Why quantize_dynamic leaves `node` f32, or "" when it quantizes it; nullopt for the kinds it does
// not report. A convolution or an f32 embedding table only when asked for: by `convolutions` or
// `embeddings`, or by name in `layers`.
std::optional<std::string> reason_left_f32(const nn::Node& node, const DynamicQuantConfig& config) {
  const bool named = !config.layers.empty() && matches_any(config.layers, node.name);
  const bool convolution = node.kind == "Conv2d" && (config.convolutions || named);
  const bool f32_table = node.kind == "Embedding" && !node.find_param("weight_scale");
  if (node.kind == "Embedding" && !f32_table) return std::nullopt;  // int8 already
  const bool table = f32_table && (config.embeddings || named);
  const bool eligible = node.kind == "Linear" || node.kind == "LSTM" || node.kind == "GRU" || convolution || table;
  if (!eligible && node.kind != "Conv2d" && node.kind != "Embedding") return std::nullopt;
  if (!eligible) return node.kind == "Conv2d" ? "convolution: --conv, or --method static" : "embedding: --embeddings";
  if (!config.layers.empty() && !named) return "not named by --layers";
  if (matches_any(config.exclude, node.name)) return "excluded";
  return "";
}

// The bytes of node's parameters not already in `owners` (tensors by their data, with the layer
// that held them first), which it then records for node; the first of them that another layer
// held, or "".
int64_t distinct_param_bytes(const nn::Node& node, std::map<const void*, std::string>& owners, std::string* shared) {
  int64_t bytes = 0;
  for (const nn::Param& p : node.params) {
    if (!p.value.defined()) continue;
    const auto [it, fresh] = owners.try_emplace(p.value.raw_data(), node.name);
    if (fresh) bytes += int64_t(p.value.nbytes());
    else if (shared && shared->empty() && it->second != node.name) *shared = it->second;
  }
  return bytes;
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
  // The quantized layers' tensors, by their data, with the layer that held each first.
  std::map<const void*, std::string> owners_before, owners_after;
  for (const nn::Node& node : graph.nodes()) {
    const std::optional<std::string> reason = reason_left_f32(node, config);
    if (!reason) continue;
    DynamicQuantLayer layer;
    layer.node = node.name;
    layer.kind = node.kind;
    layer.reason = *reason;
    layer.quantized = reason->empty();
    layer.bytes_before = layer.bytes_after =
        layer.quantized ? distinct_param_bytes(node, owners_before, &layer.shares_weight_with) : node.param_bytes();
    if (layer.quantized) to_quantize.push_back(node.name);
    report.push_back(layer);
  }
  if (!config.layers.empty() && to_quantize.empty())
    throw UsageError("--layers matches no Linear, Conv2d, LSTM, GRU or Embedding layer", "quantize --method dynamic");
  QuantizedWeights made;
  for (const std::string& name : to_quantize) graph.replace_node(name, quantized_node(graph.node(name), made));
  for (DynamicQuantLayer& layer : report)
    if (layer.quantized) layer.bytes_after = distinct_param_bytes(graph.node(layer.node), owners_after, nullptr);
  return report;
}

}  // namespace shrink::compress
