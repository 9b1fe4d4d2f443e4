// The training loop and the image data source.
#include "shrink/train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>

#include "core/memory_budget.h"
#include "shrink/core/progress.h"
#include "shrink/io/datasets.h"
#include "shrink/nn/execute.h"

namespace shrink::train {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

// One step's forward pass, loss and backward pass (gradients in the params, zeroed first).
LossResult forward_backward(nn::Graph& graph, const Batch& batch, const LossFunction& loss_function, Rng& dropout_rng) {
  nn::Tape tape;
  nn::RunOptions run;
  run.training = true;
  run.tape = &tape;
  run.rng = &dropout_rng;
  auto outputs = nn::forward(graph, batch.inputs, run);
  LossResult loss = loss_function(outputs, batch);
  graph.zero_grad();
  std::vector<Tensor> grads(outputs.size());
  grads[0] = loss.grad;
  if (loss.output_grads.size() + 1 > grads.size())
    throw UsageError(fmt::format("the loss returned gradients for {} outputs; the graph has {}",
                                 loss.output_grads.size() + 1, grads.size()), "fit");
  for (size_t i = 0; i < loss.output_grads.size(); ++i) grads[i + 1] = loss.output_grads[i];
  nn::backward(graph, tape, grads);
  return loss;
}

// The most tensor bytes one training step on the first `n` examples holds beyond what was held
// before it. The graph is left as it was: its buffers (batch norms' running statistics, QAT's
// observed ranges) restored, gradients zeroed, the dropout stream of the real steps untouched.
uint64_t step_peak_bytes(nn::Graph& graph, const DataSource& data, const LossFunction& loss_function, int64_t n) {
  std::vector<std::pair<nn::Param*, Tensor>> buffers;
  for (nn::Node& node : graph.nodes())
    for (nn::Param& param : node.params)
      if (!param.trainable) buffers.emplace_back(&param, param.value.clone());
  std::vector<int64_t> indices(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) indices[size_t(i)] = i;
  const uint64_t before = memory_budget::reserved_bytes();
  memory_budget::reset_peak();
  {
    Batch batch = data.gather(indices);
    batch.indices = indices;
    Rng probe_rng(1);
    forward_backward(graph, batch, loss_function, probe_rng);
  }
  const uint64_t peak = memory_budget::peak_reserved_bytes();
  for (auto& [param, value] : buffers) param->value = value;
  graph.zero_grad();
  return peak > before ? peak - before : 0;
}

}  // namespace

void refuse_batches_that_do_not_fit(nn::Graph& graph, const DataSource& data, const LossFunction& loss_function,
                                    int64_t batch_size) {
  batch_size = std::min<int64_t>(batch_size, data.size());  // the largest batch an epoch makes
  if (batch_size <= 2) return;
  const uint64_t left = memory_budget::left_bytes();
  if (left == 0) return;  // the machine does not say
  // A first step makes what every step keeps (gradients, packed weights): a warm-up, not measured.
  // Then two sizes apart: the Fashion-MNIST CNN needed 0.67 MB an example between 1 and 8 examples
  // and 0.86 from 16 on (the convolutions' work splits change; 4 to 16 still read 0.79), so the
  // slope is taken between 8 and 32.
  step_peak_bytes(graph, data, loss_function, 1);
  const int64_t large = std::min<int64_t>(batch_size, 32), small = std::max<int64_t>(1, large / 4);
  const uint64_t at_small = step_peak_bytes(graph, data, loss_function, small);
  const uint64_t at_large = step_peak_bytes(graph, data, loss_function, large);
  if (at_large <= at_small) return;  // nothing grows with the batch: no estimate
  const double per_example = double(at_large - at_small) / double(large - small);
  const double fixed = std::max(0.0, double(at_large) - per_example * double(large));
  const double needed = fixed + per_example * double(batch_size);
  // The budget refuses a block that leaves less than a margin; this keeps a tenth for what tensors
  // do not count (vectors, the heap's free lists).
  const double usable = 0.9 * double(left);
  if (needed <= usable) return;
  const auto fits = int64_t(std::max(1.0, (usable - fixed) / per_example));
  const auto size = [](double bytes) { return fmt::format("{:.1f} GB", bytes / 1e9); };
  throw UsageError(fmt::format("a batch of {} needs about {} for one training step ({:.2f} MB an example, measured "
                               "on steps of {} and {}), and {} is left on this machine",
                               batch_size, size(needed), per_example / 1e6, small, large, size(double(left))),
                   "--batch-size", fmt::format("a batch of {} or fewer fits", fits));
}

void install_interrupt_handler() {
  struct sigaction action {};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
}
bool interrupt_requested() { return g_interrupted.load(); }

ImageClassificationData::ImageClassificationData(const Tensor& images_u8, const Tensor& labels_u8,
                                                 float mean, float stddev) {
  if (images_u8.rank() != 3 || images_u8.dtype() != DType::u8 || labels_u8.rank() != 1 ||
      labels_u8.shape()[0] != images_u8.shape()[0])
    throw UsageError("images must be u8 (N, rows, cols) with N u8 labels");
  int64_t n = images_u8.shape()[0], rows = images_u8.shape()[1], cols = images_u8.shape()[2];
  images_ = Tensor::empty(Shape{n, 1, rows, cols}, DType::f32);
  const Tensor src = images_u8.contiguous();
  for (int64_t i = 0; i < images_.numel(); ++i)
    images_.mutable_data<float>()[i] = (src.data<uint8_t>()[i] / 255.f - mean) / stddev;
  labels_ = labels_u8.to(DType::i64);
}

SubsetSource::SubsetSource(const DataSource& base, int64_t begin, int64_t end) : base_(base), begin_(begin), end_(end) {
  if (begin < 0 || end < begin || end > base.size())
    throw UsageError(fmt::format("examples [{}, {}) are outside a source of {}", begin, end, base.size()), "SubsetSource");
}

Batch SubsetSource::gather(const std::vector<int64_t>& indices) const {
  std::vector<int64_t> shifted;
  for (int64_t i : indices) {
    if (i < 0 || i >= size()) throw UsageError(fmt::format("example {} is outside the subset", i), "SubsetSource");
    shifted.push_back(begin_ + i);
  }
  Batch batch = base_.gather(shifted);
  batch.indices = indices;
  return batch;
}

Batch ImageClassificationData::gather(const std::vector<int64_t>& indices) const {
  int64_t per = images_.numel() / images_.shape()[0], n = int64_t(indices.size());
  Batch batch;
  batch.size = n;
  Tensor x = Tensor::empty(Shape{n, 1, images_.shape()[2], images_.shape()[3]}, DType::f32);
  batch.targets = Tensor::empty(Shape{n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) {
    int64_t k = indices[size_t(i)];
    std::copy(images_.data<float>() + k * per, images_.data<float>() + (k + 1) * per,
              x.mutable_data<float>() + i * per);
    batch.targets.mutable_data<int64_t>()[i] = labels_.data<int64_t>()[k];
  }
  batch.inputs = {x};
  return batch;
}

TokenWindows::TokenWindows(std::vector<int32_t> tokens, int64_t context)
    : tokens_(std::move(tokens)), context_(context) {
  if (context <= 0) throw UsageError("the context length must be positive");
}

int64_t TokenWindows::size() const {
  return tokens_.size() > 1 ? (int64_t(tokens_.size()) - 1) / context_ : 0;
}

Batch TokenWindows::gather(const std::vector<int64_t>& indices) const {
  Batch batch;
  batch.size = int64_t(indices.size());
  Tensor x = Tensor::empty(Shape{batch.size, context_}, DType::i64);
  batch.targets = Tensor::empty(Shape{batch.size, context_}, DType::i64);
  for (int64_t i = 0; i < batch.size; ++i) {
    const int32_t* start = tokens_.data() + indices[size_t(i)] * context_;
    for (int64_t j = 0; j < context_; ++j) {
      x.mutable_data<int64_t>()[i * context_ + j] = start[j];
      batch.targets.mutable_data<int64_t>()[i * context_ + j] = start[j + 1];
    }
  }
  batch.inputs = {x};
  return batch;
}

TrainResult fit(nn::Graph& graph, Optimizer& optimizer, const Schedule& schedule,
                const DataSource& data, const LossFunction& loss_function, const TrainConfig& config,
                const TrainerHooks& hooks, const std::function<Evaluation()>& evaluate) {
  install_interrupt_handler();
  if (config.check_memory) refuse_batches_that_do_not_fit(graph, data, loss_function, config.batch_size);
  TrainResult result;
  Rng dropout_rng(config.seed ^ 0x9e3779b97f4a7c15ULL);
  bool live = !config.quiet && isatty(STDERR_FILENO);
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < config.epochs; ++epoch) {
    auto batches = shuffled_batches(data.size(), config.batch_size, config.seed + uint64_t(epoch));
    if (config.max_steps_per_epoch > 0 && int64_t(batches.size()) > config.max_steps_per_epoch)
      batches.resize(size_t(config.max_steps_per_epoch));
    EpochSummary summary;
    summary.epoch = epoch;
    double loss_sum = 0;
    int64_t correct = 0, counted = 0, samples = 0;
    auto start = std::chrono::steady_clock::now();
    for (size_t b = 0; b < batches.size(); ++b, ++step) {
      Batch batch = data.gather(batches[b]);
      batch.indices = batches[b];
      LossResult loss = forward_backward(graph, batch, loss_function, dropout_rng);
      if (config.max_grad_norm > 0) clip_grad_norm(graph, config.max_grad_norm);
      StepInfo info{step, epoch, schedule.learning_rate(step), &batch, &loss};
      if (hooks.before_step) hooks.before_step(info);
      optimizer.step(graph, info.learning_rate);
      for (nn::Node& node : graph.nodes()) node.prepared = nullptr;  // packed copies of the old weights
      if (hooks.after_step) hooks.after_step(info);
      loss_sum += loss.loss * double(batch.size);
      samples += batch.size;
      correct += loss.correct;
      counted += loss.count;
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      bool last = b + 1 == batches.size();
      if (!config.quiet && (live ? (b % 10 == 0 || last) : (b % 100 == 0 || last))) {
        double rate = double(samples) / std::max(seconds, 1e-9);
        double remaining = (double(batches.size() - b - 1) * double(config.batch_size) +
                            double(config.epochs - epoch - 1) * double(batches.size() * size_t(config.batch_size))) /
                           std::max(rate, 1e-9);
        std::string line = fmt::format(
            "epoch {}/{} step {}/{}  loss {:.4f}{}  {:.0f} samples/s  lr {:.2e}  ETA {}", epoch + 1,
            config.epochs, b + 1, batches.size(), loss_sum / double(samples),
            counted ? fmt::format("  acc {:.2f}%", 100.0 * double(correct) / double(counted)) : "",
            rate, info.learning_rate, format_duration(remaining));
        std::fprintf(stderr, live ? "\r%s\033[K" : "%s\n", line.c_str());
      }
      if (interrupt_requested()) {
        if (live) std::fprintf(stderr, "\n");
        result.interrupted = true;
        return result;
      }
    }
    if (live) std::fprintf(stderr, "\n");
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    summary.train_loss = loss_sum / double(std::max<int64_t>(samples, 1));
    summary.train_accuracy = counted ? double(correct) / double(counted) : -1;
    summary.samples_per_second = double(samples) / std::max(summary.seconds, 1e-9);
    if (evaluate) {
      Evaluation e = evaluate();
      summary.eval_loss = e.loss;
      summary.eval_metric = e.metric;
      if (!config.quiet)
        std::fprintf(stderr, "epoch %lld: held-out loss %.4f, %s %.4f (%s)\n",
                     static_cast<long long>(epoch + 1), e.loss, e.metric_name.c_str(), e.metric,
                     format_duration(summary.seconds).c_str());
    }
    if (hooks.end_of_epoch) hooks.end_of_epoch(summary);
    result.epochs.push_back(summary);
  }
  return result;
}

}  // namespace shrink::train
