// Forward-pass latency of models side by side (see latency.h).
#include "shrink/eval/latency.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include "shrink/core/error.h"
#include "shrink/nn/execute.h"

namespace shrink::eval {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The rows of the smallest Embedding table reading `value`; 0 when no Embedding reads it.
int64_t embedding_rows(const nn::Graph& graph, int value) {
  int64_t rows = 0;
  for (int consumer : graph.consumers(value)) {
    const nn::Node& node = graph.nodes()[size_t(consumer)];
    if (node.kind != "Embedding") continue;
    const int64_t n = node.param("weight").value.shape()[0];
    rows = rows == 0 ? n : std::min(rows, n);
  }
  return rows;
}

Tensor made_up_input(const nn::Graph& graph, int value_id, int64_t batch, int64_t sequence, Rng& rng) {
  const nn::Value& value = graph.values()[size_t(value_id)];
  Shape shape = value.info.shape;
  bool batch_set = false;
  for (int axis = 0; axis < shape.rank(); ++axis) {
    if (shape[axis] >= 0) continue;
    shape[axis] = batch_set ? sequence : batch;
    batch_set = true;
  }
  Tensor t = Tensor::zeros(shape, value.info.dtype);
  const int64_t n = shape.numel();
  if (value.info.dtype == DType::f32) {
    float* p = t.mutable_data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = rng.normal();
    return t;
  }
  if (value.info.dtype != DType::i64 && value.info.dtype != DType::i32)
    throw UsageError(fmt::format("graph input '{}' is {}: latency inputs are made up only for f32 values and "
                                 "integer token ids",
                                 value.name, dtype_name(value.info.dtype)));
  const int64_t rows = embedding_rows(graph, value_id);
  if (rows <= 0)
    throw UsageError(fmt::format("graph input '{}' holds integers that no Embedding reads, so their range is "
                                 "unknown and no input can be made up for it",
                                 value.name));
  for (int64_t i = 0; i < n; ++i) {
    const auto id = int64_t(rng.below(uint64_t(rows)));
    if (value.info.dtype == DType::i64) t.mutable_data<int64_t>()[i] = id;
    else t.mutable_data<int32_t>()[i] = int32_t(id);
  }
  return t;
}

// The q-quantile of sorted values, interpolated between the two nearest.
double quantile(const std::vector<double>& sorted_times, double q) {
  const double at = q * double(sorted_times.size() - 1);
  const auto low = size_t(at);
  const size_t high = std::min(low + 1, sorted_times.size() - 1);
  return sorted_times[low] + (at - double(low)) * (sorted_times[high] - sorted_times[low]);
}

LatencySample summarise(std::vector<double> times) {
  std::sort(times.begin(), times.end());
  return {quantile(times, 0.5), quantile(times, 0.1), quantile(times, 0.9), int64_t(times.size())};
}

bool same_inputs(const nn::Graph& a, const nn::Graph& b) {
  if (a.inputs().size() != b.inputs().size()) return false;
  for (size_t i = 0; i < a.inputs().size(); ++i) {
    const auto& x = a.values()[size_t(a.inputs()[i])].info;
    const auto& y = b.values()[size_t(b.inputs()[i])].info;
    if (!(x.shape == y.shape) || x.dtype != y.dtype) return false;
  }
  return true;
}

// Seconds per pass in each node kind, the median over `passes` passes.
std::vector<std::pair<std::string, double>> profile_kinds(nn::Graph& graph, const std::vector<Tensor>& inputs,
                                                          int passes) {
  std::map<std::string, std::vector<double>> per_kind;
  for (int pass = 0; pass < passes; ++pass) {
    std::map<std::string, double> spent;
    double last = 0;
    nn::RunOptions options;
    options.after_node = [&](const nn::Node& node, std::span<const Tensor>) {
      const double t = now();
      spent[node.kind] += t - last;
      last = t;
    };
    last = now();
    nn::forward(graph, inputs, options);
    for (const auto& [kind, seconds] : spent) per_kind[kind].push_back(seconds);
  }
  std::vector<std::pair<std::string, double>> kinds;
  for (const auto& [kind, times] : per_kind) kinds.emplace_back(kind, summarise(times).median);
  std::sort(kinds.begin(), kinds.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return kinds;
}

}  // namespace

std::vector<Tensor> synthetic_inputs(const nn::Graph& graph, int64_t batch, int64_t sequence, Rng& rng) {
  if (batch < 1 || sequence < 1) throw UsageError("the batch and the sequence length must be at least 1");
  std::vector<Tensor> inputs;
  for (int id : graph.inputs()) inputs.push_back(made_up_input(graph, id, batch, sequence, rng));
  return inputs;
}

std::vector<LatencyResult> measure_latency(const std::vector<nn::Graph*>& graphs, const LatencyOptions& options,
                                           const std::function<void(const std::string&)>& progress) {
  if (graphs.empty()) throw UsageError("no model to measure");
  if (options.batches.empty()) throw UsageError("no batch size to measure at");
  if (options.rounds < 1) throw UsageError("at least one round is needed");
  const size_t models = graphs.size(), batches = options.batches.size();

  // inputs[b][m]; a model whose inputs match an earlier one's shares that model's tensors.
  std::vector<std::vector<std::vector<Tensor>>> inputs(batches, std::vector<std::vector<Tensor>>(models));
  for (size_t b = 0; b < batches; ++b)
    for (size_t m = 0; m < models; ++m) {
      for (size_t earlier = 0; earlier < m && inputs[b][m].empty(); ++earlier)
        if (same_inputs(*graphs[earlier], *graphs[m])) inputs[b][m] = inputs[b][earlier];
      if (!inputs[b][m].empty()) continue;
      Rng rng(options.seed + b);
      inputs[b][m] = synthetic_inputs(*graphs[m], options.batches[b], options.sequence, rng);
    }

  const auto tell = [&](const std::string& step) {
    if (progress) progress(step);
  };
  for (size_t b = 0; b < batches; ++b)
    for (size_t m = 0; m < models; ++m) {
      tell(fmt::format("warm-up, batch {}, model {}/{}", options.batches[b], m + 1, models));
      nn::forward(*graphs[m], inputs[b][m]);
    }

  std::vector<std::vector<std::vector<double>>> times(models, std::vector<std::vector<double>>(batches));
  for (int round = 0; round < options.rounds; ++round)
    for (size_t b = 0; b < batches; ++b)
      for (size_t m = 0; m < models; ++m) {
        tell(fmt::format("round {}/{}, batch {}, model {}/{}", round + 1, options.rounds, options.batches[b], m + 1,
                         models));
        const double round_start = now();
        do {
          const double start = now();
          nn::forward(*graphs[m], inputs[b][m]);
          times[m][b].push_back(now() - start);
        } while (now() - round_start < options.round_seconds);
      }

  std::vector<LatencyResult> results(models);
  for (size_t m = 0; m < models; ++m) {
    for (size_t b = 0; b < batches; ++b) results[m].by_batch.push_back(summarise(times[m][b]));
    if (options.profile) {
      tell(fmt::format("profile, batch {}, model {}/{}", options.batches[0], m + 1, models));
      results[m].by_kind = profile_kinds(*graphs[m], inputs[0][m], std::max(3, options.rounds));
    }
  }
  return results;
}

}  // namespace shrink::eval
