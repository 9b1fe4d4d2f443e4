// shrink train: build a zoo architecture, train it on a named dataset with progress, evaluate on
// the held-out split after each epoch and save a checkpoint (atomically) after each epoch.
#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "shrink/core/parallel.h"
#include "shrink/eval/evaluate.h"
#include "shrink/io/native_model.h"
#include "shrink/nn/zoo.h"
#include "shrink/train/task_data.h"

namespace shrink::cli {
namespace {

struct TrainOptions {
  std::string arch, data, data_dir, out, optimizer = "adamw", schedule = "cosine";
  int64_t epochs = 1, batch_size = 128, warmup_steps = -1, max_steps = 0, width = 0, layers = 0,
          context = train::kDefaultContext;
  double lr = -1, weight_decay = -1, momentum = 0.9, clip = 0, label_smoothing = 0;
  uint64_t seed = 0;
  bool quiet = false, json = false;
};

std::unique_ptr<train::Optimizer> make_optimizer(TrainOptions& o) {
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

nlohmann::json describe(const TrainOptions& o, const std::string& optimizer) {
  return {{"arch", o.arch},       {"data", o.data},           {"epochs", o.epochs},
          {"batch_size", o.batch_size}, {"optimizer", optimizer}, {"lr", o.lr},
          {"schedule", o.schedule}, {"warmup_steps", o.warmup_steps}, {"clip", o.clip},
          {"label_smoothing", o.label_smoothing}, {"seed", o.seed}, {"threads", num_threads()},
          {"max_steps_per_epoch", o.max_steps}, {"width", o.width}, {"layers", o.layers},
          {"context", o.context}};
}

void run_train(TrainOptions o) {
  const nn::ArchitectureInfo& info = nn::architecture(o.arch);
  if (o.data.empty()) o.data = info.data;
  if (o.data != info.data && o.data.rfind(info.data + "-", 0) != 0)
    throw UsageError(fmt::format("architecture '{}' is built for {}, not {}", o.arch, info.data, o.data), "--data");
  train::TaskData task = train::load_task_data(o.data, o.data_dir, true, o.context);
  nn::ZooOptions zoo;
  zoo.seed = o.seed;
  zoo.width = o.width;
  zoo.layers = o.layers;
  zoo.vocabulary = task.vocabulary;
  nn::Graph graph = nn::build_architecture(o.arch, zoo);
  auto optimizer = make_optimizer(o);
  int64_t steps_per_epoch = (task.train->size() + o.batch_size - 1) / o.batch_size;
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
  train::TrainConfig config;
  config.epochs = o.epochs;
  config.batch_size = o.batch_size;
  config.seed = o.seed;
  config.max_grad_norm = o.clip;
  config.max_steps_per_epoch = o.max_steps;
  config.quiet = o.quiet;
  if (!o.quiet)
    fmt::print(stderr, "training {} ({} parameters) on {} ({} examples), {} threads, {}\n", o.arch,
               with_thousands(uint64_t(graph.parameter_count())), o.data,
               with_thousands(uint64_t(task.train->size())), num_threads(), optimizer->describe());
  nlohmann::json provenance = {{"tool", std::string("shrink ") + SHRINK_VERSION},
                               {"technique", "train"},
                               {"config", describe(o, optimizer->describe())}};
  train::TrainerHooks hooks;
  hooks.end_of_epoch = [&](train::EpochSummary& s) {
    provenance["epochs_completed"] = s.epoch + 1;
    provenance["result"] = {{"metric", task.metric}, {"value", s.eval_metric}, {"loss", s.eval_loss},
                            {"train_samples_per_second", s.samples_per_second}};
    io::save_model(o.out, graph, provenance);
  };
  auto evaluate = [&] {
    eval::CrossEntropyReport r = eval::evaluate_cross_entropy(graph, *task.eval, 100);
    return train::Evaluation{r.loss, task.metric == "ppl" ? r.perplexity() : r.accuracy, task.metric};
  };
  auto loss = [&](const std::vector<Tensor>& outputs, const train::Batch& batch) {
    return train::cross_entropy(outputs.at(0), batch.targets, o.label_smoothing);
  };
  train::TrainResult result = train::fit(graph, *optimizer, schedule, *task.train, loss, config, hooks, evaluate);
  if (result.interrupted)
    throw InterruptedError(result.epochs.empty()
                               ? "interrupted before the first epoch ended; nothing was written"
                               : fmt::format("interrupted; the checkpoint of epoch {} is intact at {}",
                                             result.epochs.size(), o.out));
  double total_seconds = 0;
  for (const auto& e : result.epochs) total_seconds += e.seconds;
  const train::EpochSummary& last = result.epochs.back();
  if (o.json) {
    nlohmann::ordered_json out = {{"model", o.out}, {"metric", task.metric}, {"value", last.eval_metric},
                                  {"loss", last.eval_loss}, {"train_seconds", total_seconds},
                                  {"train_samples_per_second", last.samples_per_second}};
    fmt::print("{}\n", out.dump(2));
    return;
  }
  std::string quality = task.metric == "ppl"
                            ? fmt::format("perplexity {:.3f} per token, {:.3f} bits per character (unigram baseline: "
                                          "perplexity {:.3f} per token)",
                                          last.eval_metric, last.eval_loss / std::log(2.0) / task.characters_per_token,
                                          std::exp(task.unigram_cross_entropy))
                            : fmt::format("accuracy {:.2f}%", 100 * last.eval_metric);
  fmt::print("{}: held-out {}, loss {:.4f}; trained {} epochs in {:.1f} s ({:.0f} samples/s); saved {}\n", o.arch,
             quality, last.eval_loss, result.epochs.size(), total_seconds, last.samples_per_second, o.out);
}

}  // namespace

void setup_train(CLI::App& sub) {
  auto o = std::make_shared<TrainOptions>();
  std::vector<std::string> arch_names;
  for (const auto& a : nn::architectures()) arch_names.push_back(a.name);
  sub.add_option("--arch", o->arch, "Architecture from the zoo")->required()->check(CLI::IsMember(arch_names));
  sub.add_option("--data", o->data, "Dataset (default: the one the architecture is built for)");
  sub.add_option("--data-dir", o->data_dir, "Folder of the dataset (default: the asset cache)");
  sub.add_option("--out", o->out, "Where to write the model (rewritten atomically after each epoch)")->required();
  sub.add_option("--epochs", o->epochs, "Passes over the training data")->check(CLI::PositiveNumber);
  sub.add_option("--batch-size", o->batch_size, "Examples per step")->check(CLI::PositiveNumber);
  sub.add_option("--optimizer", o->optimizer, "adamw or sgd")->check(CLI::IsMember({"adamw", "sgd"}));
  sub.add_option("--lr", o->lr, "Peak learning rate (default 2e-3 for AdamW, 0.05 for SGD)")->check(CLI::PositiveNumber);
  sub.add_option("--weight-decay", o->weight_decay, "AdamW decoupled decay (0.01) or SGD L2 (5e-4)")->check(CLI::NonNegativeNumber);
  sub.add_option("--momentum", o->momentum, "SGD momentum")->check(CLI::Range(0.0, 0.999));
  sub.add_option("--schedule", o->schedule, "cosine, step (halve each epoch) or constant")
      ->check(CLI::IsMember({"cosine", "step", "constant"}));
  sub.add_option("--warmup-steps", o->warmup_steps, "Linear warm-up steps (default: half an epoch, at most 200)");
  sub.add_option("--clip", o->clip, "Clip the global gradient norm to this (0: off)")->check(CLI::NonNegativeNumber);
  sub.add_option("--label-smoothing", o->label_smoothing, "Cross-entropy label smoothing")->check(CLI::Range(0.0, 0.5));
  sub.add_option("--max-steps-per-epoch", o->max_steps, "Stop each epoch early (smoke tests)")->check(CLI::NonNegativeNumber);
  sub.add_option("--width", o->width, "Override the architecture's width")->check(CLI::NonNegativeNumber);
  sub.add_option("--layers", o->layers, "Override the architecture's depth")->check(CLI::NonNegativeNumber);
  sub.add_option("--context", o->context, "Text: characters per training window")->check(CLI::PositiveNumber);
  sub.add_option("--seed", o->seed, "Seed of initialisation, shuffling and dropout");
  sub.add_flag("--quiet", o->quiet, "No progress on stderr");
  sub.add_flag("--json", o->json, "Print the result as JSON");
  sub.callback([o] { run_train(*o); });
}

}  // namespace shrink::cli
