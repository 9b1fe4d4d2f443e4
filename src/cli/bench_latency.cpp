// shrink bench latency MODEL...: forward-pass time of models side by side (a model and its
// compressed versions), measured in alternating rounds on made-up inputs of the models' own
// shapes; file size beside it, and with --profile the time by node kind.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

#include "cli/bench_latency.h"
#include "io/file_kind.h"
#include "shrink/core/error.h"
#include "shrink/core/parallel.h"
#include "shrink/eval/latency.h"
#include "shrink/io/llm_import.h"
#include "shrink/io/native_model.h"
#include "shrink/kernels/cpu.h"

namespace shrink::cli {
namespace {

namespace fs = std::filesystem;

nn::Graph load_graph(const std::string& path) {
  if (!fs::exists(path)) throw IoError("no such file", path);
  if (fs::is_directory(path) || io::sniff_model_file(path) == io::ModelFileKind::gguf)
    return io::load_language_model(path).graph;
  return io::load_model(path).graph;
}

std::string milliseconds(double seconds) {
  const double ms = seconds * 1e3;
  return ms >= 100 ? fmt::format("{:.0f}", ms) : ms >= 10 ? fmt::format("{:.1f}", ms) : fmt::format("{:.3f}", ms);
}

std::string versus(double reference, double mine) {
  if (mine <= 0 || reference <= 0) return "";
  const double ratio = reference / mine;
  return ratio >= 1 ? fmt::format("{:.2f}x faster", ratio) : fmt::format("{:.2f}x slower", 1 / ratio);
}

}  // namespace

void run_bench_latency(const LatencyCliOptions& o) {
  if (o.models.empty()) throw UsageError("give one or more model files to measure", "MODEL");
  std::vector<nn::Graph> graphs;
  std::vector<uint64_t> sizes;
  for (const auto& path : o.models) {
    graphs.push_back(load_graph(path));
    sizes.push_back(stored_bytes(path));
  }
  std::vector<nn::Graph*> pointers;
  for (auto& g : graphs) pointers.push_back(&g);

  eval::LatencyOptions options;
  options.batches = o.batches;
  options.sequence = o.sequence;
  options.rounds = o.rounds;
  options.profile = o.profile;
  const bool show_progress = !o.quiet && isatty(STDERR_FILENO);
  const auto results = eval::measure_latency(pointers, options, [&](const std::string& step) {
    if (show_progress) fmt::print(stderr, "\r\33[2K[latency] {}", step);
  });
  if (show_progress) fmt::print(stderr, "\r\33[2K");

  const auto isa = std::string(isa_name(active_isa()));
  if (o.json) {
    nlohmann::ordered_json models = nlohmann::ordered_json::array();
    for (size_t m = 0; m < graphs.size(); ++m) {
      nlohmann::ordered_json rows = nlohmann::ordered_json::array();
      for (size_t b = 0; b < o.batches.size(); ++b) {
        const auto& s = results[m].by_batch[b];
        rows.push_back({{"batch", o.batches[b]}, {"median_seconds", s.median}, {"p10_seconds", s.p10},
                        {"p90_seconds", s.p90}, {"passes", s.passes},
                        {"speedup_vs_first", s.median > 0 ? results[0].by_batch[b].median / s.median : 0.0}});
      }
      nlohmann::ordered_json model = {{"model", o.models[m]}, {"file_bytes", sizes[m]}, {"batches", rows}};
      if (o.profile) {
        nlohmann::ordered_json kinds = nlohmann::ordered_json::object();
        for (const auto& [kind, seconds] : results[m].by_kind) kinds[kind] = seconds;
        model["seconds_by_node_kind"] = kinds;
      }
      models.push_back(model);
    }
    print_json(nlohmann::ordered_json{{"threads", num_threads()}, {"isa", isa}, {"rounds", o.rounds},
                                      {"sequence", o.sequence}, {"models", models}});
    return;
  }
  fmt::print("threads {} | ISA {} | {} rounds, each running every model in turn | made-up inputs "
             "(sequences of {})\nper forward pass: the median and the 10th-90th percentiles of all passes\n\n",
             num_threads(), isa, o.rounds, o.sequence);
  size_t name_width = 5;
  for (const auto& path : o.models) name_width = std::max(name_width, path.size());
  fmt::print("  {:<{}}  {:>9}  {:>6}  {:>10}  {:>17}  {:>11}  {}\n", "model", name_width, "size", "batch",
             "ms", "10th-90th ms", "examples/s", "against the first");
  for (size_t b = 0; b < o.batches.size(); ++b) {
    for (size_t m = 0; m < graphs.size(); ++m) {
      const auto& s = results[m].by_batch[b];
      fmt::print("  {:<{}}  {:>9}  {:>6}  {:>10}  {:>17}  {:>11}  {}\n", o.models[m], name_width,
                 human_bytes(sizes[m]), o.batches[b], milliseconds(s.median),
                 milliseconds(s.p10) + "-" + milliseconds(s.p90),
                 with_thousands(uint64_t(double(o.batches[b]) / s.median + 0.5)),
                 m == 0 ? "" : versus(results[0].by_batch[b].median, s.median));
    }
  }
  if (!o.profile) return;
  for (size_t m = 0; m < graphs.size(); ++m) {
    double total = 0;
    for (const auto& [kind, seconds] : results[m].by_kind) total += seconds;
    fmt::print("\n{} at batch {}, by node kind (medians per pass):\n", o.models[m], o.batches[0]);
    for (const auto& [kind, seconds] : results[m].by_kind)
      fmt::print("  {:<20} {:>10} ms  {:>5.1f}%\n", kind, milliseconds(seconds),
                 total > 0 ? 100 * seconds / total : 0.0);
  }
}

}  // namespace shrink::cli
