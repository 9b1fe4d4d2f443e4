// Quantization-aware training: preparing a graph with fake quantization where the static int8
// region will quantize, and converting it with the learned ranges.
#include "shrink/compress/qat.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "shrink/core/error.h"
#include "shrink/quant/int8_linear.h"

namespace shrink::compress {
namespace {

// Answers every request with placeholder qparams and remembers which values were asked for.
class RecordingSource final : public ActivationQParamsSource {
 public:
  explicit RecordingSource(const nn::Graph& graph) : graph_(graph) {}
  std::pair<float, int32_t> qparams(int value) const override {
    requested_.insert(graph_.values()[size_t(value)].name);
    return {1.f, 0};
  }
  const std::set<std::string>& requested() const { return requested_; }

 private:
  const nn::Graph& graph_;
  mutable std::set<std::string> requested_;
};

// qparams by value name, from the FakeQuantize nodes' ranges.
class LearnedSource final : public ActivationQParamsSource {
 public:
  LearnedSource(const nn::Graph& graph, std::map<std::string, U8QParams> table) : graph_(graph), table_(std::move(table)) {}
  std::pair<float, int32_t> qparams(int value) const override {
    const std::string& name = graph_.values()[size_t(value)].name;
    auto it = table_.find(name);
    if (it == table_.end())
      throw UsageError(fmt::format("no fake quantization observed '{}' during training", name), "convert_qat");
    return {it->second.scale, it->second.zero};
  }

 private:
  const nn::Graph& graph_;
  std::map<std::string, U8QParams> table_;
};

bool quantizable_layer(const nn::Node& node) { return node.kind == "Conv2d" || node.kind == "Linear"; }

}  // namespace

std::vector<std::string> prepare_qat(nn::Graph& graph, const QatConfig& config) {
  if (config.weight_bits < 2 || config.weight_bits > 8)
    throw UsageError(fmt::format("weight bits must be between 2 and 8, got {}", config.weight_bits), "--weight-bits");
  for (const nn::Node& node : graph.nodes())
    if (node.kind == "FakeQuantize") throw UsageError("the model is already prepared for QAT", node.name);
  // Which activations would the int8 graph quantize? Ask the converter, on a folded copy.
  nn::Graph folded = graph;
  fold_batch_norms(folded);
  RecordingSource recorder(folded);
  const StaticQuantResult dry = convert_static(folded, recorder, {config.exclude, config.weight_bits});
  std::set<std::string> quantized_layers;
  for (const auto& layer : dry.layers)
    if (!layer.quantized_kind.empty()) quantized_layers.insert(layer.node);
  for (nn::Node& node : graph.nodes())
    if (quantizable_layer(node) && quantized_layers.count(node.name)) node.attrs["weight_bits"] = config.weight_bits;
  std::vector<std::string> inserted;
  for (const std::string& value_name : recorder.requested()) {
    int value = -1;
    for (int id = 0; id < int(graph.values().size()); ++id)
      if (graph.values()[size_t(id)].name == value_name) value = id;
    if (value < 0) throw UsageError(fmt::format("value '{}' vanished while preparing", value_name), "prepare_qat");
    nn::Node fq;
    fq.name = value_name + ".fake_quant";
    fq.kind = "FakeQuantize";
    fq.attrs = {{"observe", true}, {"enabled", true}, {"averaging", config.averaging}};
    Tensor range = Tensor::empty(Shape{2}, DType::f32);
    range.mutable_data<float>()[0] = 1.f, range.mutable_data<float>()[1] = -1.f;  // empty
    fq.params.push_back({"range", range, {}, false});
    const int producer = graph.values()[size_t(value)].producer;
    if (producer >= 0) {
      graph.insert_after(graph.nodes()[size_t(producer)].name, std::move(fq));
    } else {  // a graph input: in front of each consumer, sharing one node
      const std::vector<int> consumers = graph.consumers(value);
      if (consumers.empty()) continue;
      const std::string first = graph.nodes()[size_t(consumers[0])].name;
      const auto& inputs = graph.nodes()[size_t(consumers[0])].inputs;
      const int index = int(std::find(inputs.begin(), inputs.end(), value) - inputs.begin());
      graph.insert_before(first, index, std::move(fq));
      const int fq_out = graph.node(value_name + ".fake_quant").outputs[0];
      for (int c : graph.consumers(value)) {
        nn::Node& consumer = graph.nodes()[size_t(c)];
        if (consumer.kind == "FakeQuantize") continue;
        for (int& in : consumer.inputs)
          if (in == value) in = fq_out;
      }
      graph.validate();
    }
    inserted.push_back(value_name + ".fake_quant");
  }
  return inserted;
}

void set_observing(nn::Graph& graph, bool observe) {
  for (nn::Node& node : graph.nodes())
    if (node.kind == "FakeQuantize") node.attrs["observe"] = observe;
}

StaticQuantResult convert_qat(const nn::Graph& qat_graph, const QatConfig& config) {
  nn::Graph graph = qat_graph;
  fold_batch_norms(graph);
  std::map<std::string, U8QParams> table;
  std::vector<std::string> fake;
  for (const nn::Node& node : graph.nodes())
    if (node.kind == "FakeQuantize") {
      const float* r = node.param("range").value.data<float>();
      if (r[0] > r[1]) throw UsageError("this fake quantization never observed anything", node.name);
      table[graph.values()[size_t(node.inputs[0])].name] = u8_activation_qparams(r[0], r[1]);
      fake.push_back(node.name);
    }
  for (const std::string& name : fake) graph.remove_node(name);
  LearnedSource source(graph, std::move(table));
  return convert_static(graph, source, {config.exclude, config.weight_bits});
}

}  // namespace shrink::compress
