// Options shared by the subcommands that train (train, prune with fine-tuning): optimizer,
// schedule, batches, clipping, seed; and the loss and held-out evaluation for a named dataset.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "shrink/train/optim.h"
#include "shrink/train/task_data.h"
#include "shrink/train/trainer.h"

namespace shrink::cli {

struct TrainingOptions {
  std::string optimizer = "adamw", schedule = "cosine";
  int64_t epochs = 1, batch_size = 128, warmup_steps = -1, max_steps = 0;
  double lr = -1, weight_decay = -1, momentum = 0.9, clip = 0, label_smoothing = 0;
  uint64_t seed = 0;
  bool quiet = false;
};

// Adds --epochs, --batch-size, --optimizer, --lr, ...; `epochs_flag` names the epochs option.
void add_training_options(CLI::App& sub, TrainingOptions& o, const std::string& epochs_flag = "--epochs");

// Fills in the optimizer's defaults (lr, weight decay) and builds it.
std::unique_ptr<train::Optimizer> make_optimizer(TrainingOptions& o);
train::Schedule make_schedule(TrainingOptions& o, int64_t steps_per_epoch);
train::TrainConfig make_train_config(const TrainingOptions& o);
nlohmann::json describe(const TrainingOptions& o);

// Cross-entropy against the batch targets (classification or next token).
train::LossFunction cross_entropy_loss(double label_smoothing = 0);
// Held-out evaluation reported as the task's metric (accuracy, or perplexity per token).
train::Evaluation evaluate_task(nn::Graph& graph, const train::TaskData& task);

}  // namespace shrink::cli

#include "shrink/io/native_model.h"

namespace shrink::cli {

// The model a compression command starts from and the dataset it is measured on: --data, or the
// dataset the model's provenance names (with its context length).
struct SourceModel {
  std::string path;
  io::LoadedModel model;
  std::string data;
  int64_t context = train::kDefaultContext;
  std::unique_ptr<train::TaskData> task;  // null when no dataset is known
};
// `needs_data` (e.g. "fine-tuning") makes a missing dataset a UsageError; `with_training_split`
// loads the training split too.
SourceModel open_source_model(const std::string& path, const std::string& data, const std::string& data_dir,
                              const char* needs_data, bool with_training_split);
// tool, technique, source and the source's provenance; the caller adds config and result.
nlohmann::json compression_provenance(const char* technique, const SourceModel& source);
// The provenance's held-out result: the task's metric after (value, loss) and before the
// compression, or an empty object when the model has no dataset to be measured on (an
// imported ONNX detector): no -1 placeholders for `inspect` to show.
nlohmann::json held_out_result(const train::TaskData* task, const train::Evaluation& before,
                               const train::Evaluation& after);
// "93.19%" for accuracy, "4.276" for perplexity.
std::string format_metric(const train::TaskData& task, double value);
std::string metric_title(const train::TaskData& task);  // "accuracy" or "perplexity"

}  // namespace shrink::cli
