// shrink quantize MODEL --out OUT --method dynamic: int8 weights per output channel for Linear,
// LSTM and GRU layers with activations quantized at run time; a table of what was and was not
// quantized, the held-out metric before and after, and the file sizes.
#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/training_options.h"
#include "shrink/compress/quantize_dynamic.h"
#include "shrink/io/native_model.h"

namespace shrink::cli {
namespace {

struct QuantizeOptions {
  std::string model, out, method = "dynamic", data, data_dir;
  compress::DynamicQuantConfig dynamic;
  bool json = false;
};

void run_quantize(const QuantizeOptions& o) {
  SourceModel source = open_source_model(o.model, o.data, o.data_dir, nullptr, false);
  nn::Graph& graph = source.model.graph;
  train::Evaluation before, after;
  if (source.task) before = evaluate_task(graph, *source.task);
  const std::vector<compress::DynamicQuantLayer> layers = compress::quantize_dynamic(graph, o.dynamic);
  if (source.task) after = evaluate_task(graph, *source.task);
  nlohmann::json provenance = compression_provenance("quantize", source);
  provenance["config"] = {{"method", o.method}, {"layers", o.dynamic.layers}, {"exclude", o.dynamic.exclude},
                          {"weights", "int8 symmetric per output channel"},
                          {"activations", "u8 per row at run time"}, {"data", source.data},
                          {"context", source.context}};
  provenance["result"] = {{"metric", source.task ? source.task->metric : ""},
                          {"value", source.task ? after.metric : -1}, {"loss", source.task ? after.loss : -1},
                          {"before", source.task ? before.metric : -1}};
  io::save_model(o.out, graph, provenance);
  const auto file_before = std::filesystem::file_size(o.model), file_after = std::filesystem::file_size(o.out);
  int64_t quantized_before = 0, quantized_after = 0;
  for (const auto& l : layers)
    if (l.quantized) quantized_before += l.bytes_before, quantized_after += l.bytes_after;
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"file_bytes_before", file_before}, {"file_bytes_after", file_after},
                                  {"quantized_layer_bytes_before", quantized_before},
                                  {"quantized_layer_bytes_after", quantized_after}};
    out["layers"] = nlohmann::json::array();
    for (const auto& l : layers)
      out["layers"].push_back({{"node", l.node}, {"kind", l.kind}, {"quantized", l.quantized}, {"reason", l.reason},
                               {"bytes_before", l.bytes_before}, {"bytes_after", l.bytes_after},
                               {"weight_error", l.weight_error}});
    if (source.task) out.update({{"metric", source.task->metric}, {"before", before.metric}, {"after", after.metric}});
    fmt::print("{}\n", out.dump(2));
    return;
  }
  size_t width = 20;
  for (const auto& l : layers) width = std::max(width, l.node.size());
  fmt::print("  {:<{}} {:<10} {:>10} {:>10} {:>11}  {}\n", "layer", width, "kind", "bytes", "after", "max w err", "");
  for (const auto& l : layers)
    fmt::print("  {:<{}} {:<10} {:>10} {:>10} {:>11}  {}\n", l.node, width, l.kind,
               human_bytes(uint64_t(l.bytes_before)), human_bytes(uint64_t(l.bytes_after)),
               l.quantized ? fmt::format("{:.3f}%", 100 * l.weight_error) : "", l.quantized ? "int8" : "f32: " + l.reason);
  if (quantized_after > 0)
    fmt::print("\nquantized layers: {} -> {} ({:.2f}x smaller); file {} -> {}\n", human_bytes(uint64_t(quantized_before)),
               human_bytes(uint64_t(quantized_after)), double(quantized_before) / double(quantized_after),
               human_bytes(file_before), human_bytes(file_after));
  if (source.task)
    fmt::print("held-out {}: {} before, {} after\n", metric_title(*source.task),
               format_metric(*source.task, before.metric), format_metric(*source.task, after.metric));
  fmt::print("saved {}\n", o.out);
}

}  // namespace

void setup_quantize(CLI::App& sub) {
  auto o = std::make_shared<QuantizeOptions>();
  sub.add_option("MODEL", o->model, "A shrink model file")->required();
  sub.add_option("--out", o->out, "Where to write the quantized model")->required();
  sub.add_option("--method", o->method, "dynamic: int8 weights, activations quantized at run time")
      ->check(CLI::IsMember({"dynamic"}));
  sub.add_option("--layers", o->dynamic.layers, "Node-name globs to quantize (default: every Linear, LSTM, GRU)")
      ->take_all();
  sub.add_option("--exclude", o->dynamic.exclude, "Node-name globs to keep f32 (repeatable)")->take_all();
  sub.add_option("--data", o->data, "Dataset for the before/after evaluation (default: the model's)");
  sub.add_option("--data-dir", o->data_dir, "Folder of the dataset (default: the asset cache)");
  sub.add_flag("--json", o->json, "Print the result as JSON");
  sub.callback([o] { run_quantize(*o); });
}

}  // namespace shrink::cli
