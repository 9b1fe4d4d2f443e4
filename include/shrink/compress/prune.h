// Unstructured and N:M magnitude pruning of the weights of Linear, Conv2d, LSTM and GRU nodes;
// masks that training keeps enforced; the cubic sparsity schedule of Zhu & Gupta (2017) for
// iterative prune-and-fine-tune.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::compress {

struct PruneConfig {
  double sparsity = 0.5;  // fraction of weights set to zero, in [0, 1)
  bool global = false;    // one magnitude threshold across all pruned layers
  int n = 0, m = 0;       // N:M when m > 0: keep the n largest of every m consecutive inputs
  std::vector<std::pair<std::string, double>> overrides;  // node-name glob -> its own sparsity
  std::vector<std::string> exclude;  // node-name globs left dense
};

// One mask per pruned parameter (u8, 1 = kept), by dotted parameter name.
using Masks = std::map<std::string, Tensor>;

struct LayerSparsity {
  std::string param;
  Shape shape;
  int64_t elements = 0, zeros = 0;
  double sparsity() const { return elements ? double(zeros) / double(elements) : 0.0; }
};
struct PruneReport {
  std::vector<LayerSparsity> layers;
  int64_t elements = 0, zeros = 0;  // over the pruned layers
  double sparsity() const { return elements ? double(zeros) / double(elements) : 0.0; }
};

// The parameters pruning applies to ("fc1.weight", "lstm.weight_hh_l0", ...), after exclusions.
std::vector<std::string> prunable_params(const nn::Graph& graph, const PruneConfig& config);

// Computes masks by magnitude (ties broken by position, so exactly the asked count is pruned)
// and zeros the pruned weights. UsageError for sparsity outside [0, 1), bad N:M, or a layer whose
// input width is not a multiple of M.
Masks prune_by_magnitude(nn::Graph& graph, const PruneConfig& config);

// Zeros the masked weights (after each optimizer step) and, when asked, their gradients.
void apply_masks(nn::Graph& graph, const Masks& masks, bool gradients_too = false);

PruneReport sparsity_report(const nn::Graph& graph, const std::vector<std::string>& params);

// Zhu & Gupta: s_t = s_final + (s_initial - s_final) (1 - t / steps)^3, clamped to [0, steps].
double cubic_sparsity(double initial, double final_sparsity, int64_t step, int64_t steps);

// fnmatch-style glob ("blocks.*.mlp.*").
bool name_matches(const std::string& pattern, const std::string& name);

}  // namespace shrink::compress
