// shrink factorize MODEL --out OUT (--rank R | --ratio F | --energy E): SVD of Linear and Conv2d
// weights into two smaller layers, optionally followed by fine-tuning; for a language model
// (GGUF, Hugging Face folder) the transformer blocks' Linear layers, plain (--method svd) or
// activation-aware with calibration text (--method asvd | svd-llm --calib FILE).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/training_options.h"
#include "shrink/compress/llm_factorize.h"
#include "shrink/compress/llm_quantize.h"
#include "shrink/compress/lowrank.h"
#include "shrink/io/llm_import.h"
#include "shrink/io/native_model.h"

namespace shrink::cli {
namespace {

struct FactorizeOptions {
  std::string model, out, data, data_dir, calib;
  int64_t samples = 32, seq_len = 512;
  compress::FactorizeConfig config;
  bool json = false;
  TrainingOptions training;
};

void print_layers(const std::vector<compress::FactorizedLayer>& layers) {
  fmt::print("  {:<20} {:>12} {:>6} {:>8} {:>12} {:>12}  {}\n", "layer", "matrix", "rank", "energy", "params", "after", "");
  for (const auto& l : layers)
    fmt::print("  {:<20} {:>12} {:>6} {:>7.2f}% {:>12} {:>12}  {}\n", l.node, fmt::format("{}x{}", l.rows, l.cols),
               l.rank, 100 * l.energy_kept, with_thousands(uint64_t(l.params_before)),
               with_thousands(uint64_t(l.params_after)), l.factored ? "" : "left alone: " + l.reason);
}

nlohmann::json config_json(const FactorizeOptions& o) {
  return {{"method", o.config.method}, {"rank", o.config.rank}, {"ratio", o.config.ratio},
          {"energy", o.config.energy}, {"exclude", o.config.exclude}};
}

void run_factorize_language_model(const FactorizeOptions& o) {
  if (o.training.epochs > 0)
    throw UsageError("fine-tuning after factorization is for the task models (shrink files with a dataset)",
                     "--fine-tune-epochs");
  o.config.validate();
  if (o.config.method != "svd" && o.calib.empty())
    throw UsageError(fmt::format("{} calibrates on text", o.config.method), "--calib", "pass --calib FILE");
  io::LanguageModel lm = io::load_language_model(o.model);
  std::vector<std::vector<int32_t>> calibration;
  if (o.config.method != "svd") {
    std::vector<int32_t> stream = lm.tokenizer->encode(read_text_file(o.calib, "the calibration text"));
    calibration = compress::sample_calibration(stream, o.samples, o.seq_len, o.training.seed);
  }
  compress::LlmFactorizeOptions options{o.config, 4, o.json};
  compress::LlmFactorizeReport r = compress::factorize_language_model(lm, calibration, options);
  nlohmann::json config = config_json(o);
  config.update({{"calib", o.calib}, {"samples", o.samples}, {"seq_len", o.seq_len}, {"seed", o.training.seed},
                 {"asvd_alpha", o.config.asvd_alpha}, {"damp", o.config.damp}});
  nlohmann::json provenance = {{"tool", "shrink " SHRINK_VERSION}, {"technique", "factorize"}, {"source", o.model},
                               {"config", config}};
  io::save_language_model(o.out, lm, provenance);
  int64_t block_before = 0, block_after = 0;
  for (const auto& l : r.layers) block_before += l.params_before, block_after += l.params_after;
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"method", o.config.method}, {"params_before", r.params_before},
                                  {"params_after", r.params_after}, {"block_linear_params_before", block_before},
                                  {"block_linear_params_after", block_after}, {"seconds", r.seconds},
                                  {"calibration_tokens", r.calibration_tokens}, {"peak_rss_bytes", r.peak_rss_bytes}};
    out["layers"] = nlohmann::json::array();
    for (const auto& l : r.layers)
      out["layers"].push_back({{"name", l.node}, {"rank", l.rank}, {"energy_kept", l.energy_kept}, {"factored", l.factored}});
    print_json(out);
    return;
  }
  print_layers(r.layers);
  fmt::print("\nblock Linear parameters: {} -> {} ({:.1f}%); whole model {} -> {} ({:.1f}%); {:.1f} s\nsaved {}\n",
             with_thousands(uint64_t(block_before)), with_thousands(uint64_t(block_after)),
             100.0 * double(block_after) / double(std::max<int64_t>(block_before, 1)),
             with_thousands(uint64_t(r.params_before)), with_thousands(uint64_t(r.params_after)),
             100.0 * double(r.params_after) / double(r.params_before), r.seconds, o.out);
}

void run_factorize(FactorizeOptions o) {
  if (io::is_language_model_path(o.model)) return run_factorize_language_model(o);
  TrainingOptions& t = o.training;
  SourceModel source = open_source_model(o.model, o.data, o.data_dir, t.epochs > 0 ? "fine-tuning" : nullptr, t.epochs > 0);
  nn::Graph& graph = source.model.graph;
  const std::unique_ptr<train::TaskData>& task = source.task;
  int64_t params_before = graph.parameter_count();
  train::Evaluation before, factored, tuned;
  if (task) before = evaluate_task(graph, *task);
  auto layers = compress::factorize(graph, o.config);
  if (layers.empty())  // a quantized model: "parameters: 0 -> 0 (-nan%)" and an unchanged copy, exit 0
    throw UsageError("the model has no f32 Linear or Conv2d layer to factorize (is it quantized already?)");
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
  provenance["config"] = config_json(o);
  provenance["config"].update({{"data", source.data}, {"context", source.context}, {"fine_tuning", describe(t)}});
  provenance["result"] = held_out_result(task.get(), before, tuned);
  if (task) provenance["result"]["factored"] = factored.metric;
  io::save_model(o.out, graph, provenance);
  int64_t params_after = graph.parameter_count();
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"params_before", params_before}, {"params_after", params_after}};
    if (task) out.update({{"metric", task->metric}, {"before", before.metric}, {"factored", factored.metric},
                          {"fine_tuned", tuned.metric}});
    print_json(out);
    return;
  }
  print_layers(layers);
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
  sub.add_option("MODEL", o->model, "A shrink model file, or a language model (GGUF, Hugging Face folder)")->required();
  sub.add_option("--out", o->out, "Where to write the factored model")->required();
  auto rank = sub.add_option("--rank", o->config.rank, "Keep this many singular values in every layer")->check(kPositive);
  auto ratio = sub.add_option("--ratio", o->config.ratio, "Keep this fraction of each layer's parameters");
  auto energy = sub.add_option("--energy", o->config.energy, "Keep this fraction of each layer's singular-value energy");
  rank->excludes(ratio)->excludes(energy);
  ratio->excludes(energy);
  sub.add_option("--method", o->config.method,
                 "svd (plain); for language models also asvd (inputs scaled by mean|x|^alpha) or svd-llm "
                 "(whitened by the Cholesky factor of X^T X), both with --calib")
      ->capture_default_str();
  sub.add_option("--calib", o->calib, "asvd/svd-llm: calibration text file");
  sub.add_option("--samples", o->samples, "asvd/svd-llm: calibration windows")->check(kPositive)->capture_default_str();
  sub.add_option("--seq-len", o->seq_len, "asvd/svd-llm: tokens per calibration window")
      ->check(kPositive)->capture_default_str();
  sub.add_option("--asvd-alpha", o->config.asvd_alpha, "asvd: the exponent of mean|x|")->capture_default_str();
  sub.add_option("--damp", o->config.damp, "svd-llm: damping added to diag(X^T X), fraction of its mean")
      ->capture_default_str();
  sub.add_option("--exclude", o->config.exclude, "Node-name globs to leave alone (repeatable)")->take_all();
  sub.add_option("--data", o->data, "Dataset for evaluation and fine-tuning (default: the model's)");
  sub.add_option("--data-dir", o->data_dir, "Folder of the dataset (default: the asset cache)");
  add_training_options(sub, o->training, "--fine-tune-epochs");
  sub.add_flag("--json", o->json, "Print the result as JSON");
  sub.callback([o] { run_factorize(*o); });
}

}  // namespace shrink::cli
