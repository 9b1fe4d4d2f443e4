// Low-rank factorization: the SVD (LAPACK sgesdd) of a Linear weight W (out, in), or of a Conv2d
// weight reshaped to (OC, C*KH*KW), keeps the top r singular triplets and splits the layer into
// two: x -> (V_r^T)-layer (r outputs, the original stride/padding for a conv) -> (U_r S_r)-layer
// (the original outputs and bias; a 1x1 conv for convolutions). Eckart-Young: this is the best
// rank-r approximation in Frobenius norm.
//
// Activation-aware variants weigh the input side by calibration statistics before the SVD, W T =
// U S V^T, and undo it in the first factor: W' = (U_r S_r)(V_r^T T^-1).
// - ASVD (Yuan et al. 2023, "ASVD: Activation-aware Singular Value Decomposition for Compressing
//   Large Language Models"): T = diag(mean |x_j|^alpha), alpha 0.5 as in the paper.
// - SVD-LLM (Wang et al. 2024, "SVD-LLM: Truncation-aware Singular Value Decomposition for Large
//   Language Model Compression"): T = L, the Cholesky factor of X^T X (+ damping). Then
//   ||(W - W')X^T||_F^2 = ||(W - W')L||_F^2 = the sum of the dropped singular values squared, so
//   truncation minimises the layer's output error on the calibration data exactly.
#pragma once
#include <string>
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::compress {

struct FactorizeConfig {
  int64_t rank = 0;     // fixed rank when > 0
  double ratio = 0;     // else: keep this fraction of each layer's parameters, in (0, 1)
  double energy = 0;    // else: smallest rank keeping this fraction of sum(s^2), in (0, 1]
  std::vector<std::string> exclude;  // node-name globs left alone
  std::string method = "svd";       // svd, asvd, svd-llm (the last two need InputStatistics)
  double asvd_alpha = 0.5;
  double damp = 0.01;  // svd-llm: added to diag(X^T X), as a fraction of its mean; raised tenfold on failure
  void validate() const;  // UsageError for a missing criterion, values out of range, an unknown method
};

struct FactorizedLayer {
  std::string node;
  int64_t rows = 0, cols = 0, rank = 0;
  int64_t params_before = 0, params_after = 0;
  double energy_kept = 0;  // sum of kept s^2 / total
  bool factored = false;
  std::string reason;  // why a layer was left alone
};

// Singular values (descending) and factors of a row-major (rows, cols) matrix:
// a = u (rows, k) diag(s) vt (k, cols), k = min(rows, cols).
struct Svd {
  std::vector<float> u, s, vt;
  int64_t rows = 0, cols = 0, k = 0;
};
Svd svd(const float* a, int64_t rows, int64_t cols);  // UnsupportedError without LAPACK

// What the activation-aware methods know of a layer's inputs (dim = in_features).
struct InputStatistics {
  Tensor gram;                 // f32 (dim, dim), any positive multiple of X^T X (svd-llm)
  std::vector<float> mean_abs;  // mean |x_j| over the calibration tokens (asvd)
};

// The two factors of one (rows, cols) weight: W ~ second (rows, rank) x first (rank, cols).
struct LowRankFactors {
  Tensor first, second;
  int64_t rank = 0;
  double energy_kept = 0;  // of the (weighted) singular values
  double damp = 0;         // svd-llm: the damping that worked
};
// Ranks above min(rows, cols) are clipped to it; `stats` is required for asvd and svd-llm.
LowRankFactors factor_weight(const Tensor& weight, const FactorizeConfig& config, const InputStatistics* stats);

// Replaces the Linear or Conv2d node `name` by the chain (name + ".low_rank", name).
void replace_with_factors(nn::Graph& graph, const std::string& name, const LowRankFactors& factors);

// Rewrites every eligible Linear/Conv2d (groups 1) node; layers where the chosen rank would not
// save parameters, or exceeds the matrix, are left alone and reported. UsageError for a rank
// larger than every matrix allows, ratio or energy out of range, or no criterion given.
std::vector<FactorizedLayer> factorize(nn::Graph& graph, const FactorizeConfig& config);

// One node (Linear or Conv2d): factored when the rank fits and saves parameters, else left alone
// with the reason in the report.
FactorizedLayer factorize_layer(nn::Graph& graph, const std::string& name, const FactorizeConfig& config,
                                const InputStatistics* stats);

}  // namespace shrink::compress
