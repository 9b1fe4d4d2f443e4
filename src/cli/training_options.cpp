// The training options shared by subcommands.
#include "cli/training_options.h"

#include <fmt/format.h>

#include "cli/commands.h"

#include "shrink/core/parallel.h"
#include "shrink/eval/evaluate.h"
#include "shrink/train/losses.h"

namespace shrink::cli {

void add_training_options(CLI::App& sub, TrainingOptions& o, const std::string& epochs_flag) {
  sub.add_option(epochs_flag, o.epochs, "Passes over the training data")->check(kNonNegative);
  sub.add_option("--batch-size", o.batch_size, "Examples per step")->check(kPositive);
  sub.add_option("--optimizer", o.optimizer, "adamw or sgd")->check(CLI::IsMember({"adamw", "sgd"}));
  sub.add_option("--lr", o.lr, "Peak learning rate (default 2e-3 for AdamW, 0.05 for SGD)")->check(kPositive);
  sub.add_option("--weight-decay", o.weight_decay, "AdamW decoupled decay (0.01) or SGD L2 (5e-4)")->check(kNonNegative);
  sub.add_option("--momentum", o.momentum, "SGD momentum")->check(CLI::Range(0.0, 0.999));
  sub.add_option("--schedule", o.schedule, "cosine, step (halve each epoch) or constant")
      ->check(CLI::IsMember({"cosine", "step", "constant"}));
  sub.add_option("--warmup-steps", o.warmup_steps, "Linear warm-up steps (default: half an epoch, at most 200)");
  sub.add_option("--clip", o.clip, "Clip the global gradient norm to this (0: off)")->check(kNonNegative);
  sub.add_option("--label-smoothing", o.label_smoothing, "Cross-entropy label smoothing")->check(CLI::Range(0.0, 0.5));
  sub.add_option("--max-steps-per-epoch", o.max_steps, "Stop each epoch early")->check(kNonNegative);
  sub.add_option("--seed", o.seed, "Seed of initialisation, shuffling and dropout");
  sub.add_flag("--quiet", o.quiet, "No progress on stderr");
}

std::unique_ptr<train::Optimizer> make_optimizer(TrainingOptions& o) {
  if (o.optimizer == "sgd") {
    if (o.lr < 0) o.lr = 0.05;
    if (o.weight_decay < 0) o.weight_decay = 5e-4;
    return train::make_sgd({o.momentum, o.weight_decay, false});
  }
  if (o.lr < 0) o.lr = 2e-3;
  if (o.weight_decay < 0) o.weight_decay = 0.01;
  train::AdamWConfig config;
  config.weight_decay = o.weight_decay;
  return train::make_adamw(config);
}

train::Schedule make_schedule(TrainingOptions& o, int64_t steps_per_epoch) {
  if (o.max_steps > 0) steps_per_epoch = std::min(steps_per_epoch, o.max_steps);
  train::Schedule schedule;
  schedule.kind = o.schedule == "constant" ? train::Schedule::Kind::constant
                  : o.schedule == "step"   ? train::Schedule::Kind::step
                                           : train::Schedule::Kind::cosine;
  schedule.base_lr = o.lr;
  schedule.total_steps = steps_per_epoch * o.epochs;
  if (o.warmup_steps < 0) o.warmup_steps = std::min<int64_t>(steps_per_epoch / 2, 200);
  schedule.warmup_steps = o.warmup_steps;
  schedule.step_size = steps_per_epoch;
  schedule.gamma = 0.5;
  return schedule;
}

train::TrainConfig make_train_config(const TrainingOptions& o) {
  train::TrainConfig config;
  config.epochs = o.epochs;
  config.batch_size = o.batch_size;
  config.seed = o.seed;
  config.max_grad_norm = o.clip;
  config.max_steps_per_epoch = o.max_steps;
  config.quiet = o.quiet;
  return config;
}

nlohmann::json describe(const TrainingOptions& o) {
  return {{"epochs", o.epochs},   {"batch_size", o.batch_size}, {"optimizer", o.optimizer},
          {"lr", o.lr},           {"weight_decay", o.weight_decay}, {"schedule", o.schedule},
          {"warmup_steps", o.warmup_steps}, {"clip", o.clip}, {"label_smoothing", o.label_smoothing},
          {"seed", o.seed},       {"threads", num_threads()}, {"max_steps_per_epoch", o.max_steps}};
}

train::LossFunction cross_entropy_loss(double label_smoothing) {
  return [label_smoothing](const std::vector<Tensor>& outputs, const train::Batch& batch) {
    return train::cross_entropy(outputs.at(0), batch.targets, label_smoothing);
  };
}

train::Evaluation evaluate_task(nn::Graph& graph, const train::TaskData& task) {
  eval::CrossEntropyReport r = eval::evaluate_cross_entropy(graph, *task.eval, 100);
  return {r.loss, task.metric == "ppl" ? r.perplexity() : r.accuracy, task.metric};
}

}  // namespace shrink::cli

namespace shrink::cli {

SourceModel open_source_model(const std::string& path, const std::string& data, const std::string& data_dir,
                              const char* needs_data, bool with_training_split) {
  SourceModel source;
  source.path = path;
  source.model = io::load_model(path);
  const nlohmann::json config = source.model.provenance.value("config", nlohmann::json::object());
  source.data = data.empty() ? config.value("data", "") : data;
  source.context = config.value("context", train::kDefaultContext);
  if (needs_data && source.data.empty())
    throw UsageError(fmt::format("{} needs data and the model does not say what it was trained on", needs_data),
                     "--data");
  if (!source.data.empty())
    source.task = std::make_unique<train::TaskData>(
        train::load_task_data(source.data, data_dir, with_training_split, source.context));
  return source;
}

nlohmann::json compression_provenance(const char* technique, const SourceModel& source) {
  return {{"tool", std::string("shrink ") + SHRINK_VERSION},
          {"technique", technique},
          {"source", source.path},
          {"source_provenance", source.model.provenance}};
}

nlohmann::json held_out_result(const train::TaskData* task, const train::Evaluation& before,
                               const train::Evaluation& after) {
  if (!task) return nlohmann::json::object();
  return {{"metric", task->metric}, {"value", after.metric}, {"loss", after.loss}, {"before", before.metric}};
}

std::string format_metric(const train::TaskData& task, double value) {
  return task.metric == "ppl" ? fmt::format("{:.3f}", value) : fmt::format("{:.2f}%", 100 * value);
}

std::string metric_title(const train::TaskData& task) { return task.metric == "ppl" ? "perplexity" : "accuracy"; }

}  // namespace shrink::cli
