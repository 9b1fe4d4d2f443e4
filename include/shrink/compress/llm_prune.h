// One-shot pruning of a language model's Linear layers with calibration data, block by block
// with sequential calibration (block_calibration.h), as the papers' reference code does:
// - magnitude: per layer, the smallest |W| (the SparseGPT paper's baseline);
// - Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for Large Language Models",
//   and their code): score |W_ij| * ||X_j||_2 over the calibration tokens, the lowest pruned
//   within each output row (N:M: within each group of M inputs of a row); no weight update;
// - SparseGPT (Frantar & Alistarh 2023, and their sparsegpt.py): H = 2/n X^T X, dead inputs and
//   damping as GPTQ, the upper Cholesky factor of H^-1; columns in blocks of 128: the mask of a
//   block chosen by the score w^2 / [H^-1]_jj^2 over the whole block (unstructured: the lowest
//   fraction; N:M: the lowest M-N of each M columns per row, chosen when the group starts), then
//   each column's pruned weights zeroed and the error spread over the later columns (OBS update),
//   lazily between blocks.
#pragma once
#include <map>
#include <span>
#include <string>
#include <vector>

#include "shrink/compress/gptq.h"
#include "shrink/io/llm_import.h"

namespace shrink::compress {

struct SparsityTarget {
  double sparsity = 0.5;  // unstructured: fraction of each layer's weights set to zero
  int n = 0, m = 0;       // N:M when m > 0: keep n of every m consecutive inputs of a row
  void validate(int64_t in_features) const;  // UsageError
  std::string describe() const;              // "50% unstructured", "2:4"
};

struct SparseGptOptions {
  double damp = 0.01;
  int64_t block = 128;
};
struct SparseGptResult {
  Tensor weight;
  double loss = 0;  // sum of w^2 / [H^-1]_jj^2 / 2 over pruned weights (after updates)
  double damp = 0;
  int retries = 0;
  int64_t dead_columns = 0;
};
SparseGptResult sparsegpt_prune(const Tensor& weight, const Tensor& hessian, const SparsityTarget& target,
                                const SparseGptOptions& options = {});

// Wanda's pruned weights; input_norms[j] = ||X_j||_2.
Tensor wanda_prune(const Tensor& weight, std::span<const float> input_norms, const SparsityTarget& target);

// ||X_j||_2 per input channel over the rows of activations (..., dim).
class ChannelNorms {
 public:
  explicit ChannelNorms(int64_t dim) : sum_(size_t(dim), 0.0) {}
  void add(const Tensor& x);
  std::vector<float> norms() const;

 private:
  std::vector<double> sum_;
};

// ||X_j||_2 of the input of every transformer-block Linear over the calibration windows, keyed by
// node name, from one pass over the unchanged model: the statistics structured pruning ranks MLP
// neurons and attention heads by (StructuredConfig::input_norms).
std::map<std::string, std::vector<float>> block_linear_input_norms(
    nn::Graph& graph, const std::vector<std::vector<int32_t>>& calibration, int64_t batch = 4, bool quiet = false);

struct LlmPruneOptions {
  std::string method = "sparsegpt";  // "magnitude", "wanda" or "sparsegpt"
  SparsityTarget target;
  SparseGptOptions sparsegpt;
  int64_t batch = 4;
  std::vector<std::string> exclude = {"lm_head"};
  bool quiet = false;
};
struct LlmPruneLayer {
  std::string name;
  double sparsity = 0, loss = 0;
};
struct LlmPruneReport {
  std::vector<LlmPruneLayer> layers;
  int64_t weights = 0, zeros = 0;  // over the pruned layers
  double seconds = 0;
  int64_t calibration_tokens = 0, peak_rss_bytes = 0;
};
LlmPruneReport prune_language_model(io::LanguageModel& model, const std::vector<std::vector<int32_t>>& calibration,
                                    const LlmPruneOptions& options);

}  // namespace shrink::compress
