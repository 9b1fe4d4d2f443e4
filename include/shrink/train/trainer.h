// The training loop: seeded shuffled batches, forward with a tape, a loss function, backward,
// optional gradient clipping, an optimizer step at the scheduled learning rate, progress with ETA
// on stderr, and hooks that later techniques use (freeze observers, re-apply pruning masks, add
// distillation terms). Ctrl-C stops after the current step; the caller's last checkpoint stays.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "shrink/nn/graph.h"
#include "shrink/train/losses.h"
#include "shrink/train/optim.h"

namespace shrink::train {

struct Batch {
  std::vector<Tensor> inputs;  // the graph's inputs
  Tensor targets;              // class ids (classification) or next tokens (language models)
  int64_t size = 0;            // examples in the batch
  std::vector<int64_t> indices;  // which examples of the source (set by fit; caches key on it)
};

// A dataset that can hand out any example range in any order.
class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual int64_t size() const = 0;
  virtual Batch gather(const std::vector<int64_t>& indices) const = 0;
};

// Examples [begin, end) of another source (which must outlive it).
class SubsetSource final : public DataSource {
 public:
  SubsetSource(const DataSource& base, int64_t begin, int64_t end);
  int64_t size() const override { return end_ - begin_; }
  Batch gather(const std::vector<int64_t>& indices) const override;

 private:
  const DataSource& base_;
  int64_t begin_, end_;
};

// Fashion-MNIST style images (N, rows, cols) u8 -> (N, 1, rows, cols) f32 normalised with the
// given mean and standard deviation of pixel/255; labels as i64.
class ImageClassificationData final : public DataSource {
 public:
  ImageClassificationData(const Tensor& images_u8, const Tensor& labels_u8, float mean, float stddev);
  int64_t size() const override { return images_.shape()[0]; }
  Batch gather(const std::vector<int64_t>& indices) const override;

 private:
  Tensor images_, labels_;
};

// A token sequence cut into consecutive windows of `context` tokens: inputs (N, T) i64 and the
// next tokens (N, T) i64 as targets. Windows do not overlap; the last partial one is dropped.
class TokenWindows final : public DataSource {
 public:
  TokenWindows(std::vector<int32_t> tokens, int64_t context);
  int64_t size() const override;
  Batch gather(const std::vector<int64_t>& indices) const override;
  int64_t context() const { return context_; }

 private:
  std::vector<int32_t> tokens_;
  int64_t context_;
};

struct StepInfo {
  int64_t step = 0;   // global, from 0
  int64_t epoch = 0;  // from 0
  double learning_rate = 0;
  const Batch* batch = nullptr;
  const LossResult* loss = nullptr;
};

struct EpochSummary {
  int64_t epoch = 0;
  double train_loss = 0;
  double train_accuracy = -1;  // when the loss counts correct rows
  double seconds = 0;
  double samples_per_second = 0;
  double eval_loss = -1, eval_metric = -1;  // whatever the evaluate callback reports
};

struct TrainerHooks {
  std::function<void(const StepInfo&)> before_step;  // after backward, before the update
  std::function<void(const StepInfo&)> after_step;   // after the update
  std::function<void(EpochSummary&)> end_of_epoch;   // after evaluation (checkpoints go here)
};

using LossFunction = std::function<LossResult(const std::vector<Tensor>& outputs, const Batch&)>;
struct Evaluation {
  double loss = -1, metric = -1;
  std::string metric_name;  // "accuracy", "ppl"
};

struct TrainConfig {
  int64_t epochs = 1;
  int64_t batch_size = 128;
  uint64_t seed = 0;
  double max_grad_norm = 0;  // 0: no clipping
  int64_t max_steps_per_epoch = 0;  // 0: the whole dataset
  bool quiet = false;
  // Before the first step: measure a step of one and of two examples and refuse (UsageError) a
  // batch whose step would not fit in the memory left, rather than run until the memory budget
  // stops it part way (a GPT at --batch-size 100000 had run ~65 s first).
  bool check_memory = true;
};

struct TrainResult {
  std::vector<EpochSummary> epochs;
  bool interrupted = false;
};

TrainResult fit(nn::Graph& graph, Optimizer& optimizer, const Schedule& schedule,
                const DataSource& data, const LossFunction& loss, const TrainConfig& config,
                const TrainerHooks& hooks = {}, const std::function<Evaluation()>& evaluate = {});

// The check fit() makes when TrainConfig::check_memory is set (exposed for the tests).
void refuse_batches_that_do_not_fit(nn::Graph& graph, const DataSource& data, const LossFunction& loss,
                                    int64_t batch_size);

// SIGINT sets a flag that fit() checks after every step (installed by fit; idempotent).
void install_interrupt_handler();
bool interrupt_requested();

}  // namespace shrink::train
