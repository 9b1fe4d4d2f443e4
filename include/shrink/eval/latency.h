// How long a model's forward pass takes, several models side by side: `shrink bench latency`.
// The machine is shared and its speed drifts by tens of percent between minutes, so the models
// are measured in alternating rounds (each round runs every model in turn) and each is reported
// as the median over all its passes with the 10th and 90th percentiles beside it; a ratio
// between two models is only as good as their medians taken in the same rounds.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "shrink/core/rng.h"
#include "shrink/nn/graph.h"

namespace shrink::eval {

// Inputs for one forward pass of `graph` at this batch: each graph input's shape with its first
// unknown dimension set to `batch` and any later unknown one to `sequence`. f32 inputs are
// standard normal; integer inputs (token ids) are uniform over the rows of every Embedding that
// reads them (the smallest, when several do). UsageError for an input that cannot be made up
// (an integer input no Embedding reads, a dtype other than f32 or an integer).
std::vector<Tensor> synthetic_inputs(const nn::Graph& graph, int64_t batch, int64_t sequence, Rng& rng);

struct LatencyOptions {
  std::vector<int64_t> batches = {1, 64};
  int64_t sequence = 128;       // for inputs with a second unknown dimension (token sequences)
  int rounds = 7;               // each round runs every model for `round_seconds` at every batch
  double round_seconds = 0.05;  // of passes per model, batch and round (at least one pass)
  bool profile = false;         // also time each node kind at the first batch
  uint64_t seed = 0;
};

struct LatencySample {
  double median = 0, p10 = 0, p90 = 0;  // seconds per forward pass
  int64_t passes = 0;
};

struct LatencyResult {
  std::vector<LatencySample> by_batch;  // in options.batches' order
  // Profile: seconds per pass spent in each node kind (the medians over passes), largest first.
  std::vector<std::pair<std::string, double>> by_kind;
};

// Measures every graph at every batch (one warm-up pass each first: it builds the packed kernel
// layouts some ops make on first use). Graphs whose inputs agree in shape and dtype get the
// same input tensors. `progress` is told each step ("round 3/7, batch 64, model 2/3").
std::vector<LatencyResult> measure_latency(const std::vector<nn::Graph*>& graphs, const LatencyOptions& options,
                                           const std::function<void(const std::string&)>& progress = {});

}  // namespace shrink::eval
