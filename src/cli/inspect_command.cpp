// shrink inspect FILE: architecture, metadata, tensor table and totals, or the same as JSON.
#include <fmt/format.h>

#include <map>

#include "cli/commands.h"
#include "shrink/io/inspect.h"

namespace shrink::cli {
namespace {

struct InspectOptions {
  std::string path;
  bool json = false;
  bool brief = false;
};

std::string shorten(std::string text, size_t width) {
  for (char& c : text)
    if (c == '\n' || c == '\t') c = ' ';
  return text.size() <= width ? text : text.substr(0, width - 3) + "...";
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

void print_table(const ModelSummary& summary, bool brief) {
  fmt::print("{:<18} {}\n", "file", summary.path);
  fmt::print("{:<18} {}{}{}, {} ({} bytes)\n", "format", summary.format,
             summary.format_version.empty() ? "" : " v" + summary.format_version,
             summary.shards > 1 ? fmt::format(" in {} shards", summary.shards) : "",
             human_bytes(summary.file_bytes), with_thousands(summary.file_bytes));
  for (const auto& [key, value] : summary.architecture) fmt::print("{:<18} {}\n", key, shorten(value, 100));
  if (!brief && summary.metadata.is_object() && !summary.metadata.empty()) {
    fmt::print("\nmetadata ({} entries)\n", summary.metadata.size());
    for (const auto& [key, value] : summary.metadata.items()) {
      constexpr auto replace = nlohmann::json::error_handler_t::replace;  // a GGUF's strings may not be UTF-8
      std::string shown = value.is_string() ? value.get<std::string>() : value.dump(-1, ' ', false, replace);
      if (value.is_object() && value.contains("length"))
        shown = fmt::format("[{} x {}] {}", value["length"].dump(), value["element_type"].get<std::string>(),
                            value["first"].dump(-1, ' ', false, replace));
      fmt::print("  {:<44} {}\n", key, shorten(shown, 90));
    }
  }
  if (!brief && !summary.graph.empty()) {
    size_t width = 20;
    for (const auto& n : summary.graph) width = std::max(width, n.name.size());
    fmt::print("\ngraph ({} nodes)\n  {:<{}}  {:<18} {:<20} {:>10}  {}\n", summary.graph.size(), "node", width, "kind",
               "output shape", "params", "inputs");
    for (const auto& n : summary.graph) {
      std::string shape = shape_text(n.output_shape);
      for (size_t at = shape.find("-1"); at != std::string::npos; at = shape.find("-1")) shape.replace(at, 2, "?");
      std::string inputs;
      for (const auto& i : n.inputs) inputs += (inputs.empty() ? "" : ", ") + i;
      fmt::print("  {:<{}}  {:<18} {:<20} {:>10}  {}\n", n.name, width, n.kind, shape,
                 n.params ? with_thousands(uint64_t(n.params)) : "", shorten(inputs, 60));
    }
  }
  if (!brief) {
    size_t name_width = 24;
    for (const auto& t : summary.tensors) name_width = std::max(name_width, t.name.size());
    fmt::print("\n  {:<{}}  {:<6} {:<22} {:>13} {:>14}\n", "tensor", name_width, "type", "shape", "elements", "bytes");
    for (const auto& t : summary.tensors)
      fmt::print("  {:<{}}  {:<6} {:<22} {:>13} {:>14}\n", t.name, name_width, t.dtype, shape_text(t.shape),
                 with_thousands(uint64_t(t.params)), with_thousands(t.bytes));
  }
  std::map<std::string, std::pair<int64_t, uint64_t>> by_type;  // params, bytes
  std::map<std::string, size_t> counts;
  for (const auto& t : summary.tensors) {
    by_type[t.dtype].first += t.params;
    by_type[t.dtype].second += t.bytes;
    ++counts[t.dtype];
  }
  fmt::print("\n  {:<8} {:>8} {:>14} {:>15} {:>7}\n", "type", "tensors", "elements", "bytes", "bpw");
  for (const auto& [type, totals] : by_type)
    fmt::print("  {:<8} {:>8} {:>14} {:>15} {:>7.3f}\n", type, counts[type], with_thousands(uint64_t(totals.first)),
               with_thousands(totals.second), totals.first ? 8.0 * double(totals.second) / double(totals.first) : 0.0);
  fmt::print("\ntotal: {} tensors, {} parameters ({:.1f}M){}, {} of tensor data, {:.3f} bits per weight\n",
             summary.tensors.size(), with_thousands(uint64_t(summary.total_params)),
             double(summary.total_params) / 1e6,
             summary.total_buffer_elements ? " + " + with_thousands(uint64_t(summary.total_buffer_elements)) + " integer buffer elements" : "",
             human_bytes(summary.total_tensor_bytes), summary.bits_per_weight());
}

}  // namespace

void setup_inspect(CLI::App& sub) {
  auto options = std::make_shared<InspectOptions>();
  sub.add_option("FILE", options->path, ".gguf or .safetensors file, or a Hugging Face model folder")->required();
  sub.add_flag("--json", options->json, "Print everything as one JSON object");
  sub.add_flag("--brief", options->brief, "Leave out the metadata and the tensor table");
  sub.callback([options] {
    const ModelSummary summary = summarize_model(options->path);
    if (options->json) {
      print_json(to_json(summary));
    } else {
      print_table(summary, options->brief);
    }
  });
}

}  // namespace shrink::cli
