// Magnitude pruning (per layer, global, N:M), mask enforcement and the cubic schedule.
#include "shrink/compress/prune.h"

#include <fmt/format.h>
#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace shrink::compress {
namespace {

bool is_weight(const nn::Node& node, const nn::Param& p) {
  if (node.kind == "Linear" || node.kind == "Conv2d") return p.name == "weight";
  if (node.kind == "LSTM" || node.kind == "GRU") return p.name.rfind("weight_", 0) == 0;
  return false;
}

double sparsity_for(const PruneConfig& config, const std::string& node_name) {
  for (const auto& [pattern, s] : config.overrides)
    if (name_matches(pattern, node_name)) return s;
  return config.sparsity;
}

void check_sparsity(double s, const std::string& where) {
  if (!(s >= 0.0 && s < 1.0))
    throw UsageError(fmt::format("sparsity must be in [0, 1), got {}", s), where);
}

// Indices of the `count` smallest |values|, ties by position.
std::vector<int64_t> smallest(const std::vector<std::pair<float, int64_t>>& keyed, int64_t count) {
  std::vector<std::pair<float, int64_t>> work = keyed;
  if (count <= 0) return {};
  std::nth_element(work.begin(), work.begin() + (count - 1), work.end());
  std::vector<int64_t> out;
  for (int64_t i = 0; i < count; ++i) out.push_back(work[size_t(i)].second);
  return out;
}

struct Target {
  std::string name;
  nn::Param* param;
  double sparsity;
};

}  // namespace

bool name_matches(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

std::vector<std::string> prunable_params(const nn::Graph& graph, const PruneConfig& config) {
  std::vector<std::string> names;
  for (const nn::Node& node : graph.nodes()) {
    bool excluded = std::any_of(config.exclude.begin(), config.exclude.end(),
                                [&](const std::string& p) { return name_matches(p, node.name); });
    if (excluded) continue;
    for (const nn::Param& p : node.params)
      if (is_weight(node, p) && p.value.dtype() == DType::f32) names.push_back(node.name + "." + p.name);
  }
  return names;
}

Masks prune_by_magnitude(nn::Graph& graph, const PruneConfig& config) {
  check_sparsity(config.sparsity, "--sparsity");
  for (const auto& [pattern, s] : config.overrides) check_sparsity(s, pattern);
  if (config.m > 0 && (config.n <= 0 || config.n >= config.m))
    throw UsageError(fmt::format("an N:M pattern needs 0 < N < M, got {}:{}", config.n, config.m), "--pattern");
  std::vector<std::string> names = prunable_params(graph, config);
  if (names.empty())
    throw config.exclude.empty()
        ? UsageError("the model has no f32 Linear, Conv2d, LSTM or GRU weights to prune (is it quantized already?)")
        : UsageError("no Linear, Conv2d, LSTM or GRU weights left to prune", "--exclude");
  std::vector<Target> targets;
  for (auto& [name, p] : graph.named_params(true))
    if (std::find(names.begin(), names.end(), name) != names.end())
      targets.push_back({name, p, sparsity_for(config, name.substr(0, name.rfind('.')))});
  Masks masks;
  for (const Target& t : targets) {
    Tensor mask = Tensor::empty(t.param->value.shape(), DType::u8);
    std::fill(mask.mutable_data<uint8_t>(), mask.mutable_data<uint8_t>() + mask.numel(), uint8_t(1));
    masks[t.name] = mask;
  }
  auto magnitude = [](const Tensor& w, int64_t i) { return std::abs(w.data<float>()[i]); };
  if (config.m > 0) {  // N:M along the input dimension of each output row
    for (const Target& t : targets) {
      const Tensor& w = t.param->value;
      int64_t rows = w.shape()[0], width = w.numel() / rows;
      if (width % config.m)
        throw UsageError(fmt::format("{} inputs are not a multiple of M = {}", width, config.m), t.name,
                         "exclude the layer with --exclude");
      uint8_t* mask = masks[t.name].mutable_data<uint8_t>();
      std::vector<int64_t> order(static_cast<size_t>(config.m));
      for (int64_t start = 0; start < w.numel(); start += config.m) {
        std::iota(order.begin(), order.end(), start);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return magnitude(w, a) < magnitude(w, b); });
        for (int i = 0; i < config.m - config.n; ++i) mask[order[size_t(i)]] = 0;
      }
    }
  } else if (config.global) {
    std::vector<std::pair<float, int64_t>> keyed;
    std::vector<std::pair<size_t, int64_t>> where;  // (target, element) per key
    for (size_t k = 0; k < targets.size(); ++k)
      for (int64_t i = 0; i < targets[k].param->value.numel(); ++i) {
        keyed.emplace_back(magnitude(targets[k].param->value, i), int64_t(where.size()));
        where.emplace_back(k, i);
      }
    for (int64_t key : smallest(keyed, int64_t(std::floor(config.sparsity * double(keyed.size())))))
      masks[targets[where[size_t(key)].first].name].mutable_data<uint8_t>()[where[size_t(key)].second] = 0;
  } else {
    for (const Target& t : targets) {
      const Tensor& w = t.param->value;
      std::vector<std::pair<float, int64_t>> keyed;
      for (int64_t i = 0; i < w.numel(); ++i) keyed.emplace_back(magnitude(w, i), i);
      for (int64_t i : smallest(keyed, int64_t(std::floor(t.sparsity * double(w.numel())))))
        masks[t.name].mutable_data<uint8_t>()[i] = 0;
    }
  }
  apply_masks(graph, masks);
  return masks;
}

void apply_masks(nn::Graph& graph, const Masks& masks, bool gradients_too) {
  for (auto& [name, p] : graph.named_params()) {
    auto it = masks.find(name);
    if (it == masks.end()) continue;
    if (it->second.shape() != p->value.shape())
      throw UsageError(fmt::format("mask {} does not fit the weight {}", it->second.shape().to_string(),
                                   p->value.shape().to_string()), name);
    const uint8_t* keep = it->second.data<uint8_t>();
    float* w = p->value.mutable_data<float>();
    for (int64_t i = 0; i < p->value.numel(); ++i)
      if (!keep[i]) w[i] = 0.f;
    if (gradients_too && p->grad.defined()) {
      float* g = p->grad.mutable_data<float>();
      for (int64_t i = 0; i < p->grad.numel(); ++i)
        if (!keep[i]) g[i] = 0.f;
    }
  }
}

PruneReport sparsity_report(const nn::Graph& graph, const std::vector<std::string>& params) {
  PruneReport report;
  for (const auto& [name, p] : graph.named_params()) {
    if (std::find(params.begin(), params.end(), name) == params.end()) continue;
    LayerSparsity row{name, p->value.shape(), p->value.numel(), 0};
    const float* w = p->value.data<float>();
    for (int64_t i = 0; i < row.elements; ++i) row.zeros += w[i] == 0.f;
    report.elements += row.elements;
    report.zeros += row.zeros;
    report.layers.push_back(row);
  }
  return report;
}

double cubic_sparsity(double initial, double final_sparsity, int64_t step, int64_t steps) {
  if (steps <= 0) return final_sparsity;
  double progress = std::clamp(double(step) / double(steps), 0.0, 1.0);
  return final_sparsity + (initial - final_sparsity) * std::pow(1.0 - progress, 3.0);
}

}  // namespace shrink::compress
