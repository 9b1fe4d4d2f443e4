// shrink factorize MODEL --out OUT (--rank R | --ratio F | --energy E): SVD of Linear and Conv2d
// weights into two smaller layers, optionally followed by fine-tuning.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/training_options.h"
#include "shrink/compress/lowrank.h"
#include "shrink/io/native_model.h"

namespace shrink::cli {
namespace {

struct FactorizeOptions {
  std::string model, out, data, data_dir;
  compress::FactorizeConfig config;
  bool json = false;
  TrainingOptions training;
};

void run_factorize(FactorizeOptions o) {
  TrainingOptions& t = o.training;
  SourceModel source = open_source_model(o.model, o.data, o.data_dir, t.epochs > 0 ? "fine-tuning" : nullptr, t.epochs > 0);
  nn::Graph& graph = source.model.graph;
  const std::unique_ptr<train::TaskData>& task = source.task;
  int64_t params_before = graph.parameter_count();
  train::Evaluation before, factored, tuned;
  if (task) before = evaluate_task(graph, *task);
  auto layers = compress::factorize(graph, o.config);
  if (task) factored = tuned = evaluate_task(graph, *task);
  if (t.epochs > 0) {
    auto optimizer = make_optimizer(t);
    train::Schedule schedule = make_schedule(t, (task->train->size() + t.batch_size - 1) / t.batch_size);
    auto result = train::fit(graph, *optimizer, schedule, *task->train, cross_entropy_loss(t.label_smoothing),
                             make_train_config(t), {}, [&] { return evaluate_task(graph, *task); });
    if (result.interrupted) throw InterruptedError("interrupted; nothing was written");
    tuned = evaluate_task(graph, *task);
  }
  nlohmann::json provenance = compression_provenance("factorize", source);
  provenance["config"] = {{"rank", o.config.rank}, {"ratio", o.config.ratio}, {"energy", o.config.energy},
                          {"exclude", o.config.exclude}, {"data", source.data},
                          {"context", source.context},
                          {"fine_tuning", describe(t)}};
  provenance["result"] = {{"metric", task ? task->metric : ""}, {"value", task ? tuned.metric : -1},
                          {"loss", task ? tuned.loss : -1}, {"before", task ? before.metric : -1},
                          {"factored", task ? factored.metric : -1}};
  io::save_model(o.out, graph, provenance);
  int64_t params_after = graph.parameter_count();
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"params_before", params_before}, {"params_after", params_after}};
    if (task) out.update({{"metric", task->metric}, {"before", before.metric}, {"factored", factored.metric},
                          {"fine_tuned", tuned.metric}});
    fmt::print("{}\n", out.dump(2));
    return;
  }
  fmt::print("  {:<20} {:>12} {:>6} {:>8} {:>12} {:>12}  {}\n", "layer", "matrix", "rank", "energy", "params", "after", "");
  for (const auto& l : layers)
    fmt::print("  {:<20} {:>12} {:>6} {:>7.2f}% {:>12} {:>12}  {}\n", l.node, fmt::format("{}x{}", l.rows, l.cols),
               l.rank, 100 * l.energy_kept, with_thousands(uint64_t(l.params_before)),
               with_thousands(uint64_t(l.params_after)), l.factored ? "" : "left alone: " + l.reason);
  fmt::print("\nparameters: {} -> {} ({:.1f}%)\n", with_thousands(uint64_t(params_before)),
             with_thousands(uint64_t(params_after)), 100.0 * double(params_after) / double(params_before));
  if (task) {
    auto show = [&](double v) { return format_metric(*task, v); };
    fmt::print("held-out {}: {} before, {} factored{}\n", task->metric, show(before.metric), show(factored.metric),
               t.epochs > 0 ? ", " + show(tuned.metric) + " after fine-tuning" : "");
  }
  fmt::print("saved {}\n", o.out);
}

}  // namespace

void setup_factorize(CLI::App& sub) {
  auto o = std::make_shared<FactorizeOptions>();
  o->training.epochs = 0;
  sub.add_option("MODEL", o->model, "A shrink model file")->required();
  sub.add_option("--out", o->out, "Where to write the factored model")->required();
  auto rank = sub.add_option("--rank", o->config.rank, "Keep this many singular values in every layer")->check(CLI::PositiveNumber);
  auto ratio = sub.add_option("--ratio", o->config.ratio, "Keep this fraction of each layer's parameters");
  auto energy = sub.add_option("--energy", o->config.energy, "Keep this fraction of each layer's singular-value energy");
  rank->excludes(ratio)->excludes(energy);
  ratio->excludes(energy);
  sub.add_option("--exclude", o->config.exclude, "Node-name globs to leave alone (repeatable)")->take_all();
  sub.add_option("--data", o->data, "Dataset for evaluation and fine-tuning (default: the model's)");
  sub.add_option("--data-dir", o->data_dir, "Folder of the dataset (default: the asset cache)");
  add_training_options(sub, o->training, "--fine-tune-epochs");
  sub.add_flag("--json", o->json, "Print the result as JSON");
  sub.callback([o] { run_factorize(*o); });
}

}  // namespace shrink::cli
