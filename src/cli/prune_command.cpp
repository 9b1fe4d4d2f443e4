// shrink prune MODEL --out OUT: magnitude pruning (per layer, global, N:M), one-shot or gradually
// with fine-tuning (Zhu & Gupta's cubic schedule, masks enforced after every step); or, with
// --channels, structured removal of whole channels followed by optional fine-tuning.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/training_options.h"
#include "shrink/compress/llm_prune.h"
#include "shrink/compress/llm_quantize.h"
#include "shrink/compress/prune.h"
#include "shrink/compress/structured.h"
#include "shrink/io/llm_import.h"
#include "shrink/io/native_model.h"

namespace shrink::cli {
namespace {

struct PruneOptions {
  std::string model, out, data, data_dir, pattern, method = "magnitude", calib;
  int64_t samples = 128, seq_len = 512;
  std::vector<std::string> exclude, layer;
  double sparsity = 0.5, ramp = 0.7, channels = 0, heads = 0;
  bool l1 = false;
  int64_t update_every = 50;
  bool global = false, json = false;
  TrainingOptions training;
};

compress::PruneConfig prune_config(const PruneOptions& o) {
  compress::PruneConfig config;
  config.sparsity = o.sparsity;
  config.global = o.global;
  config.exclude = o.exclude;
  if (!o.pattern.empty()) {
    int n = 0, m = 0;
    char tail = 0;
    if (std::sscanf(o.pattern.c_str(), "%d:%d%c", &n, &m, &tail) != 2)
      throw UsageError("'" + o.pattern + "' is not an N:M pattern such as 2:4", "--pattern");
    config.n = n, config.m = m;
  }
  for (const std::string& entry : o.layer) {
    size_t eq = entry.rfind('=');
    double s = 0;
    try {
      if (eq == std::string::npos) throw std::invalid_argument("no =");
      s = std::stod(entry.substr(eq + 1));
    } catch (const std::exception&) {
      throw UsageError("'" + entry + "' is not GLOB=SPARSITY", "--layer");
    }
    config.overrides.emplace_back(entry.substr(0, eq), s);
  }
  return config;
}

void print_channel_groups(const std::vector<compress::ChannelGroupReport>& groups, int64_t before, int64_t after) {
  for (const auto& g : groups) {
    std::string producers;
    for (size_t i = 0; i < std::min<size_t>(g.producers.size(), 2); ++i) producers += (i ? " + " : "") + g.producers[i];
    if (g.producers.size() > 2) producers += fmt::format(" + ... ({} layers)", g.producers.size());
    if (g.pruned) fmt::print("  {:<44} {:>5} -> {:>5} channels\n", producers, g.before, g.after);
    else fmt::print("  {:<44} left alone: {}\n", producers, g.reason);
  }
  fmt::print("\nparameters: {} -> {} ({:.1f}%)\n", with_thousands(uint64_t(before)), with_thousands(uint64_t(after)),
             100.0 * double(after) / double(before));
}

// shrink prune LM --channels F [--heads H]: the MLP neurons of every block (gate/up rows and down's columns)
// ranked by weight norm and removed; the rest of the transformer is left alone, with the reason.
// With --heads F also whole key/value groups of attention heads (compress/structured.h).
// --samples windows of --seq-len tokens drawn from the --calib text.
std::vector<std::vector<int32_t>> calibration_windows(const io::LanguageModel& lm, const PruneOptions& o) {
  std::vector<int32_t> stream = lm.tokenizer->encode(read_text_file(o.calib, "the calibration text"));
  return compress::sample_calibration(stream, o.samples, o.seq_len, o.training.seed);
}

void run_prune_language_model_channels(const PruneOptions& o) {
  io::LanguageModel lm = io::load_language_model(o.model);
  compress::StructuredConfig structured;
  structured.fraction = o.channels;
  structured.l1 = o.l1;
  structured.exclude = o.exclude;
  const int64_t before = lm.graph.parameter_count();
  int64_t calibration_tokens = 0;
  if (!o.calib.empty()) {  // rank by each neuron's / head's contribution on calibration text
    std::vector<std::vector<int32_t>> windows = calibration_windows(lm, o);
    for (const auto& w : windows) calibration_tokens += int64_t(w.size());
    structured.input_norms = compress::block_linear_input_norms(lm.graph, windows, 4, o.json);
  }
  std::vector<compress::ChannelGroupReport> groups;
  int64_t pruned_groups = 0;
  if (o.channels > 0) {
    groups = compress::prune_channels(lm.graph, structured);
    pruned_groups = std::count_if(groups.begin(), groups.end(), [](const auto& g) { return g.pruned; });
    if (pruned_groups == 0) throw UsageError("no channel group of this model can be pruned", "--channels");
  }
  std::vector<compress::HeadGroupReport> heads;
  if (o.heads > 0) {
    structured.fraction = o.heads;
    heads = compress::prune_attention_heads(lm.graph, structured);
    if (std::all_of(heads.begin(), heads.end(), [](const auto& h) { return h.removed.empty(); }))
      throw UsageError(heads.empty() ? "the model has no attention" : "no head group can be removed: " + heads[0].reason,
                       "--heads");
  }
  nlohmann::json provenance = {{"tool", "shrink " SHRINK_VERSION}, {"technique", "prune"}, {"source", o.model},
                               {"config", {{"channels", o.channels}, {"heads", o.heads}, {"norm", o.l1 ? "l1" : "l2"},
                                           {"ranking", o.calib.empty() ? "weights" : "activations"},
                                           {"calibration_tokens", calibration_tokens}, {"exclude", o.exclude}}}};
  io::save_language_model(o.out, lm, provenance);
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"params_before", before}, {"params_after", lm.graph.parameter_count()},
                                  {"pruned_groups", pruned_groups},
                                  {"ranking", o.calib.empty() ? "weights" : "activations"},
                                  {"calibration_tokens", calibration_tokens}};
    int64_t removed = 0;
    for (const auto& h : heads) removed += int64_t(h.removed.size());
    out["kv_groups_removed"] = removed;
    print_json(out);
    return;
  }
  for (const auto& h : heads) {
    if (h.removed.empty()) fmt::print("  {:<44} left alone: {}\n", h.attention, h.reason);
    else fmt::print("  {:<44} {} -> {} heads ({} -> {} key/value groups)\n", h.attention, h.heads_before, h.heads_after,
                    h.kv_heads_before, h.kv_heads_after);
  }
  print_channel_groups(groups, before, lm.graph.parameter_count());
  fmt::print("saved {}\n", o.out);
}

// shrink prune LM --method magnitude|wanda|sparsegpt: one-shot pruning of a language model's
// transformer-block Linear layers (see compress/llm_prune.h).
void run_prune_language_model(const PruneOptions& o, const compress::PruneConfig& config) {
  compress::LlmPruneOptions options;
  options.method = o.method;
  options.target = {config.sparsity, config.n, config.m};
  options.exclude.insert(options.exclude.end(), o.exclude.begin(), o.exclude.end());
  options.quiet = o.json;
  if (o.method != "magnitude" && o.calib.empty())
    throw UsageError(fmt::format("{} calibrates on text", o.method), "--calib", "pass --calib FILE");
  io::LanguageModel lm = io::load_language_model(o.model);
  std::vector<std::vector<int32_t>> calibration;
  if (o.method != "magnitude") {
    calibration = calibration_windows(lm, o);
  }
  compress::LlmPruneReport r = compress::prune_language_model(lm, calibration, options);
  nlohmann::json provenance = {{"tool", "shrink " SHRINK_VERSION}, {"technique", "prune"}, {"source", o.model},
                               {"config", {{"method", o.method}, {"target", options.target.describe()}, {"calib", o.calib},
                                           {"samples", o.samples}, {"seq_len", o.seq_len}, {"seed", o.training.seed}}}};
  io::save_language_model(o.out, lm, provenance);
  const double sparsity = r.weights ? double(r.zeros) / double(r.weights) : 0;
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"method", o.method}, {"target", options.target.describe()},
                                  {"sparsity", sparsity}, {"seconds", r.seconds},
                                  {"calibration_tokens", r.calibration_tokens}, {"peak_rss_bytes", r.peak_rss_bytes}};
    out["layers"] = nlohmann::json::array();
    for (const auto& l : r.layers) out["layers"].push_back({{"name", l.name}, {"sparsity", l.sparsity}, {"loss", l.loss}});
    print_json(out);
    return;
  }
  fmt::print("{} {}: {} Linear layers, {} of {} weights zero ({:.1f}%) in {:.1f} s\nsaved {}\n", o.method,
             options.target.describe(), r.layers.size(), with_thousands(uint64_t(r.zeros)),
             with_thousands(uint64_t(r.weights)), 100 * sparsity, r.seconds, o.out);
}

void run_prune(PruneOptions o) {
  compress::PruneConfig config = prune_config(o);
  if (io::is_language_model_path(o.model))
    return o.channels > 0 || o.heads > 0 ? run_prune_language_model_channels(o) : run_prune_language_model(o, config);
  if (o.heads > 0) throw UsageError("--heads prunes language models (GGUF, Hugging Face folders)", "--heads");
  if (o.method != "magnitude")
    throw UsageError(fmt::format("--method {} prunes language models (GGUF, Hugging Face folders)", o.method), "--method");
  if (config.sparsity < 0 || config.sparsity >= 1)
    throw UsageError(fmt::format("sparsity must be in [0, 1), got {}", config.sparsity), "--sparsity");
  TrainingOptions& t = o.training;
  SourceModel source = open_source_model(o.model, o.data, o.data_dir, t.epochs > 0 ? "fine-tuning" : nullptr, t.epochs > 0);
  nn::Graph& graph = source.model.graph;
  const std::unique_ptr<train::TaskData>& task = source.task;
  std::vector<std::string> pruned = compress::prunable_params(graph, config);
  train::Evaluation before, after;
  if (task) before = evaluate_task(graph, *task);
  compress::Masks masks;
  std::vector<compress::ChannelGroupReport> channel_groups;
  int64_t params_before = graph.parameter_count();
  if (o.channels > 0) {
    compress::StructuredConfig structured;
    structured.fraction = o.channels;
    structured.l1 = o.l1;
    structured.exclude = o.exclude;
    channel_groups = compress::prune_channels(graph, structured);
    pruned.clear();  // the remaining weights are dense
  } else if (t.epochs == 0 || config.m > 0) {
    masks = compress::prune_by_magnitude(graph, config);
  }
  if (t.epochs > 0) {
    auto optimizer = make_optimizer(t);
    int64_t steps_per_epoch = (task->train->size() + t.batch_size - 1) / t.batch_size;
    if (t.max_steps > 0) steps_per_epoch = std::min(steps_per_epoch, t.max_steps);
    train::Schedule schedule = make_schedule(t, steps_per_epoch);
    int64_t ramp_steps = int64_t(o.ramp * double(steps_per_epoch * t.epochs));
    train::TrainerHooks hooks;
    hooks.before_step = [&](const train::StepInfo& step) {
      if (o.channels > 0) return;
      if (config.m == 0 && step.step % o.update_every == 0 && step.step <= ramp_steps) {
        compress::PruneConfig now = config;
        double fraction = compress::cubic_sparsity(0.0, 1.0, step.step, ramp_steps);
        now.sparsity = fraction * config.sparsity;
        for (auto& [pattern, s] : now.overrides) s *= fraction;
        masks = compress::prune_by_magnitude(graph, now);
      }
      compress::apply_masks(graph, masks, true);
    };
    hooks.after_step = [&](const train::StepInfo&) {
      if (o.channels == 0) compress::apply_masks(graph, masks);
    };
    auto evaluate = [&] { return evaluate_task(graph, *task); };
    if (!t.quiet)
      fmt::print(stderr, "pruning to {:.0f}% over {} of {} fine-tuning steps\n", 100 * config.sparsity,
                 config.m ? 0 : ramp_steps, steps_per_epoch * t.epochs);
    auto result = train::fit(graph, *optimizer, schedule, *task->train, cross_entropy_loss(t.label_smoothing),
                             make_train_config(t), hooks, evaluate);
    if (result.interrupted) throw InterruptedError("interrupted; nothing was written");
    // The last update may sit below the target when the ramp ends between updates.
    compress::PruneConfig final_config = config;
    if (config.m == 0 && o.channels == 0) masks = compress::prune_by_magnitude(graph, final_config);
  }
  if (task) after = evaluate_task(graph, *task);
  compress::PruneReport report = compress::sparsity_report(graph, pruned);
  nlohmann::json provenance = compression_provenance("prune", source);
  provenance["config"] = {{"sparsity", o.sparsity}, {"channels", o.channels}, {"norm", o.l1 ? "l1" : "l2"}, {"global", o.global}, {"pattern", o.pattern},
                          {"exclude", o.exclude}, {"layer", o.layer}, {"data", source.data},
                          {"context", source.context},
                          {"fine_tuning", describe(t)}};
  provenance["result"] = held_out_result(task.get(), before, after);
  provenance["result"].update({{"sparsity", report.sparsity()}, {"params_before", params_before},
                               {"params_after", graph.parameter_count()}});
  io::save_model(o.out, graph, provenance);
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"sparsity", report.sparsity()}, {"zeros", report.zeros},
                                  {"elements", report.elements}, {"params_before", params_before},
                                  {"params_after", graph.parameter_count()}};
    if (task) out.update({{"metric", task->metric}, {"before", before.metric}, {"after", after.metric}});
    print_json(out);
    return;
  }
  if (o.channels > 0) print_channel_groups(channel_groups, params_before, graph.parameter_count());
  size_t width = 24;
  for (const auto& l : report.layers) width = std::max(width, l.param.size());
  if (!report.layers.empty())
    fmt::print("  {:<{}} {:<22} {:>12} {:>9}\n", "parameter", width, "shape", "elements", "sparsity");
  for (const auto& l : report.layers)
    fmt::print("  {:<{}} {:<22} {:>12} {:>8.2f}%\n", l.param, width, l.shape.to_string(),
               with_thousands(uint64_t(l.elements)), 100 * l.sparsity());
  if (o.channels == 0)
    fmt::print("\npruned layers: {:.2f}% zeros ({} of {} weights)\n", 100 * report.sparsity(),
               with_thousands(uint64_t(report.zeros)), with_thousands(uint64_t(report.elements)));
  if (task) {
    fmt::print("held-out {}: {} before, {} after\n", metric_title(*task), format_metric(*task, before.metric),
               format_metric(*task, after.metric));
  }
  fmt::print("saved {}\n", o.out);
}

}  // namespace

void setup_prune(CLI::App& sub) {
  auto o = std::make_shared<PruneOptions>();
  o->training.epochs = 0;
  sub.add_option("MODEL", o->model, "A shrink model file, or a language model (GGUF, Hugging Face folder)")->required();
  sub.add_option("--out", o->out, "Where to write the pruned model")->required();
  sub.add_option("--method", o->method,
                 "magnitude; for language models also wanda (|W| x input norm) or sparsegpt (Hessian-based, with "
                 "weight updates), one-shot with calibration")
      ->check(CLI::IsMember({"magnitude", "wanda", "sparsegpt"}));
  sub.add_option("--calib", o->calib,
                 "wanda/sparsegpt: calibration text file; with --channels/--heads on a language model, rank by activations");
  sub.add_option("--samples", o->samples, "Calibration windows (with --calib)")->check(kPositive);
  sub.add_option("--seq-len", o->seq_len, "Tokens per calibration window (with --calib)")->check(kPositive);
  sub.add_option("--sparsity", o->sparsity, "Fraction of the weights to remove, in [0, 1)");
  sub.add_option("--channels", o->channels,
                 "Structured: remove this fraction of every channel group (filters, neurons) from the graph")
      ->check(CLI::Range(0.0, 0.999));
  sub.add_option("--heads", o->heads,
                 "Language models: remove this fraction of each attention's key/value head groups (with their query heads)")
      ->check(CLI::Range(0.0, 0.999));
  sub.add_flag("--l1", o->l1, "Structured: rank channels by L1 instead of L2 norm");
  sub.add_flag("--global", o->global, "One magnitude threshold across all layers");
  sub.add_option("--pattern", o->pattern, "N:M semi-structured sparsity, e.g. 2:4 (keeps N of every M inputs)");
  sub.add_option("--exclude", o->exclude, "Node-name globs to leave dense (repeatable), e.g. head")->take_all();
  sub.add_option("--layer", o->layer, "GLOB=SPARSITY overrides (repeatable)")->take_all();
  sub.add_option("--data", o->data, "Dataset for evaluation and fine-tuning (default: the model's)");
  sub.add_option("--data-dir", o->data_dir, "Folder of the dataset (default: the asset cache)");
  add_training_options(sub, o->training, "--fine-tune-epochs");
  sub.add_option("--ramp", o->ramp, "Fraction of the fine-tuning steps over which sparsity rises")->check(CLI::Range(0.0, 1.0));
  sub.add_option("--update-every", o->update_every, "Steps between mask updates while sparsity rises")->check(kPositive);
  sub.add_flag("--json", o->json, "Print the result as JSON");
  sub.callback([o] { run_prune(*o); });
}

}  // namespace shrink::cli
