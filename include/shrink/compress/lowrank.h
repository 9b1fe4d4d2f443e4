// Low-rank factorization: the SVD (LAPACK sgesdd) of a Linear weight W (out, in), or of a Conv2d
// weight reshaped to (OC, C*KH*KW), keeps the top r singular triplets and splits the layer into
// two: x -> U_r^T-layer (r outputs, the original stride/padding for a conv) -> (V_r S_r)-layer
// (the original outputs and bias; a 1x1 conv for convolutions). Eckart-Young: this is the best
// rank-r approximation in Frobenius norm.
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

// Rewrites every eligible Linear/Conv2d (groups 1) node; layers where the chosen rank would not
// save parameters, or exceeds the matrix, are left alone and reported. UsageError for a rank
// larger than every matrix allows, ratio or energy out of range, or no criterion given.
std::vector<FactorizedLayer> factorize(nn::Graph& graph, const FactorizeConfig& config);

}  // namespace shrink::compress
