// Plain SVD factorization of Linear and Conv2d layers.
#include "shrink/compress/lowrank.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "shrink/compress/prune.h"
#include "shrink/kernels/openblas.h"

namespace shrink::compress {

Svd svd(const float* a, int64_t rows, int64_t cols) {
  const OpenBlas& blas = openblas();
  if (!blas.sgesdd) throw UnsupportedError("the SVD needs LAPACK (OpenBLAS's sgesdd) and none was found");
  // Row-major a (rows, cols) is column-major a^T (cols, rows): a^T = U' S VT' gives
  // a = VT'^T S U'^T, so u = VT'^T and vt = U'^T.
  int m = int(cols), n = int(rows), k = int(std::min(rows, cols)), info = 0, lwork = -1;
  std::vector<float> at(a, a + rows * cols), s(static_cast<size_t>(k)), u_col(static_cast<size_t>(m) * size_t(k)),
      vt_col(static_cast<size_t>(k) * size_t(n));
  std::vector<int> iwork(static_cast<size_t>(8 * k));
  float query = 0;
  const char jobz = 'S';
  blas.sgesdd(&jobz, &m, &n, at.data(), &m, s.data(), u_col.data(), &m, vt_col.data(), &k, &query, &lwork,
              iwork.data(), &info);
  lwork = int(query) + 1;
  std::vector<float> work(static_cast<size_t>(lwork));
  blas.sgesdd(&jobz, &m, &n, at.data(), &m, s.data(), u_col.data(), &m, vt_col.data(), &k, work.data(), &lwork,
              iwork.data(), &info);
  if (info != 0) throw Error(fmt::format("the SVD did not converge (sgesdd info {})", info));
  Svd out;
  out.rows = rows, out.cols = cols, out.k = k;
  out.s = s;
  // u (rows, k): u[r][j] = VT'(j, r) = vt_col[j + r*k]; vt (k, cols): vt[j][c] = U'(c, j) = u_col[c + j*m]
  out.u.resize(static_cast<size_t>(rows * k));
  out.vt.resize(static_cast<size_t>(k * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) out.u[size_t(r * k + j)] = vt_col[size_t(j + r * k)];
  for (int64_t j = 0; j < k; ++j)
    for (int64_t c = 0; c < cols; ++c) out.vt[size_t(j * cols + c)] = u_col[size_t(c + j * m)];
  return out;
}

void FactorizeConfig::validate() const {
  if (rank <= 0 && ratio <= 0 && energy <= 0)
    throw UsageError("choose a rank, a parameter ratio or an energy to keep", "factorize");
  if (ratio < 0 || ratio >= 1) throw UsageError("the ratio must be in (0, 1)", "--ratio");
  if (energy < 0 || energy > 1) throw UsageError("the energy must be in (0, 1]", "--energy");
  if (method != "svd" && method != "asvd" && method != "svd-llm")
    throw UsageError(fmt::format("unknown factorization method '{}' (svd, asvd, svd-llm)", method), "--method");
  if (!(asvd_alpha >= 0 && asvd_alpha <= 2)) throw UsageError("the ASVD alpha must be in [0, 2]", "--asvd-alpha");
  if (!(damp > 0 && damp < 1)) throw UsageError("the damping must be in (0, 1)", "--damp");
}

namespace {

int64_t choose_rank(const FactorizeConfig& config, const Svd& d) {
  if (config.rank > 0) return std::min(config.rank, d.k);
  if (config.ratio > 0)
    return std::clamp<int64_t>(int64_t(config.ratio * double(d.rows * d.cols) / double(d.rows + d.cols)), 1, d.k);
  double total = 0, kept = 0;
  for (float v : d.s) total += double(v) * v;
  for (int64_t r = 0; r < d.k; ++r) {
    kept += double(d.s[size_t(r)]) * d.s[size_t(r)];
    if (kept >= config.energy * total) return r + 1;
  }
  return d.k;
}

Tensor copy_to_tensor(const float* v, const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::f32);
  std::copy(v, v + t.numel(), t.mutable_data<float>());
  return t;
}

// ASVD's input scaling diag(mean|x|^alpha), kept as its diagonal.
std::vector<double> asvd_scale(const FactorizeConfig& config, const InputStatistics& stats, int64_t n) {
  if (int64_t(stats.mean_abs.size()) != n) throw Error("ASVD: the input statistics do not match the layer");
  double floor = 0;
  for (float v : stats.mean_abs) floor = std::max(floor, double(v));
  floor = std::max(floor * 1e-6, 1e-30);  // a dead input keeps a tiny positive weight
  std::vector<double> scale(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j)
    scale[size_t(j)] = std::pow(std::max(double(stats.mean_abs[size_t(j)]), floor), config.asvd_alpha);
  return scale;
}

// SVD-LLM's whitening: the lower Cholesky factor L of the damped Gram matrix, n x n in f64,
// column-major (LAPACK's layout; L(i, j) = t[i + j * n]); damping raised tenfold up to four times
// when the factorisation fails.
std::vector<double> whitening_factor(const FactorizeConfig& config, const InputStatistics& stats, int64_t n,
                                     double& damp_used) {
  std::vector<double> t(static_cast<size_t>(n * n), 0.0);
  if (!stats.gram.defined() || stats.gram.shape() != Shape{n, n})
    throw Error("SVD-LLM: the Gram matrix does not match the layer");
  const OpenBlas& blas = openblas();
  if (!blas.dpotrf) throw UnsupportedError("SVD-LLM needs LAPACK (OpenBLAS's dpotrf) and none was found");
  const Tensor g = stats.gram.contiguous();
  double mean_diag = 0;
  for (int64_t j = 0; j < n; ++j) mean_diag += double(g.data<float>()[j * n + j]);
  mean_diag = std::max(mean_diag / double(n), 1e-30);
  double damp = config.damp;
  for (int attempt = 0; attempt < 5; ++attempt, damp *= 10) {
    for (int64_t i = 0; i < n * n; ++i) t[size_t(i)] = double(g.data<float>()[i]);  // symmetric: either layout
    for (int64_t j = 0; j < n; ++j) t[size_t(j + j * n)] += damp * mean_diag;
    int dim = int(n), info = 0;
    const char lower = 'L';
    blas.dpotrf(&lower, &dim, t.data(), &dim, &info);
    if (info == 0) {
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < j; ++i) t[size_t(i + j * n)] = 0.0;  // clear the untouched upper triangle
      damp_used = damp;
      return t;
    }
  }
  throw Error(fmt::format("SVD-LLM: the Gram matrix is not positive definite even with damping {}", damp / 10));
}

}  // namespace

LowRankFactors factor_weight(const Tensor& weight, const FactorizeConfig& config, const InputStatistics* stats) {
  const Tensor w = weight.contiguous();
  const int64_t rows = w.shape()[0], cols = w.numel() / rows;
  const bool weighted = config.method != "svd";
  if (weighted && !stats) throw UsageError(fmt::format("{} needs calibration data", config.method), "--calib");
  LowRankFactors out;
  std::vector<double> scale, t;  // ASVD's diagonal, or SVD-LLM's lower-triangular factor
  std::vector<float> a(w.data<float>(), w.data<float>() + w.numel());  // W T
  if (config.method == "asvd") {
    scale = asvd_scale(config, *stats, cols);
    for (int64_t i = 0; i < rows * cols; ++i) a[size_t(i)] = float(double(a[size_t(i)]) * scale[size_t(i % cols)]);
  } else if (weighted) {
    t = whitening_factor(config, *stats, cols, out.damp);
    // The column-major L read row-major is L^T, so W L = W (L^T)^T: dgemm with B transposed.
    std::vector<double> wd(w.data<float>(), w.data<float>() + w.numel()), ad(a.size());
    const OpenBlas& blas = openblas();
    if (!blas.dgemm) throw UnsupportedError("SVD-LLM needs OpenBLAS's dgemm and none was found");
    blas.dgemm(101, 111, 112, int(rows), int(cols), int(cols), 1.0, wd.data(), int(cols), t.data(), int(cols), 0.0,
               ad.data(), int(cols));
    std::transform(ad.begin(), ad.end(), a.begin(), [](double v) { return float(v); });
  }
  Svd d = svd(a.data(), rows, cols);
  const int64_t r = choose_rank(config, d);
  double total = 0, kept = 0;
  for (int64_t j = 0; j < d.k; ++j) total += double(d.s[size_t(j)]) * d.s[size_t(j)];
  for (int64_t j = 0; j < r; ++j) kept += double(d.s[size_t(j)]) * d.s[size_t(j)];
  out.rank = r;
  out.energy_kept = total > 0 ? kept / total : 1.0;
  out.first = Tensor::empty(Shape{r, cols}, DType::f32);
  out.second = Tensor::empty(Shape{rows, r}, DType::f32);
  float* first = out.first.mutable_data<float>();
  float* second = out.second.mutable_data<float>();
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < r; ++j) second[i * r + j] = d.u[size_t(i * d.k + j)] * d.s[size_t(j)];
  if (!weighted) {
    std::copy(d.vt.begin(), d.vt.begin() + r * cols, first);
    return out;
  }
  if (!scale.empty()) {  // first = V_r^T diag(scale)^-1
    for (int64_t k = 0; k < r; ++k)
      for (int64_t j = 0; j < cols; ++j) first[k * cols + j] = float(double(d.vt[size_t(k * cols + j)]) / scale[size_t(j)]);
    return out;
  }
  // first = V_r^T L^-1: each row z solves z L = v, backwards over columns (L lower triangular):
  // z_j = (v_j - sum_{i > j} z_i L(i, j)) / L(j, j).
  std::vector<double> z(static_cast<size_t>(cols));
  for (int64_t k = 0; k < r; ++k) {
    const float* v = d.vt.data() + k * cols;
    for (int64_t j = cols - 1; j >= 0; --j) {
      const double* tj = t.data() + j * cols;
      double sum = 0;
      for (int64_t i = j + 1; i < cols; ++i) sum += z[size_t(i)] * tj[i];
      z[size_t(j)] = (double(v[j]) - sum) / tj[j];
    }
    for (int64_t j = 0; j < cols; ++j) first[k * cols + j] = float(z[size_t(j)]);
  }
  return out;
}

void replace_with_factors(nn::Graph& graph, const std::string& name, const LowRankFactors& f) {
  const nn::Node node = graph.node(name);
  const Shape& ws = node.param("weight").value.shape();
  const int64_t r = f.rank, rows = ws[0];
  nn::Node down = node, up = node;
  down.name = name + ".low_rank";
  down.params.clear();
  up.params.clear();
  down.prepared = up.prepared = nullptr;
  if (node.kind == "Linear") {
    down.attrs["out_features"] = r;
    down.params.push_back({"weight", f.first, {}, true});
    up.attrs["in_features"] = r;
    up.params.push_back({"weight", f.second, {}, true});
  } else {
    down.attrs["out_channels"] = r;
    down.params.push_back({"weight", copy_to_tensor(f.first.data<float>(), Shape{r, ws[1], ws[2], ws[3]}), {}, true});
    up.attrs = {{"in_channels", r}, {"out_channels", rows}, {"kernel_size", 1}};
    up.params.push_back({"weight", copy_to_tensor(f.second.data<float>(), Shape{rows, r, 1, 1}), {}, true});
  }
  if (const nn::Param* bias = node.find_param("bias")) up.params.push_back(*bias);
  graph.replace_with_chain(name, {down, up});
}

std::vector<FactorizedLayer> factorize(nn::Graph& graph, const FactorizeConfig& config) {
  config.validate();
  if (config.method != "svd")
    throw UsageError(fmt::format("{} calibrates on a language model's text", config.method), "--method",
                     "use --method svd here, or factorize a language model with --calib");
  std::vector<std::string> names;
  for (const nn::Node& n : graph.nodes())
    if ((n.kind == "Linear" || (n.kind == "Conv2d" && n.attrs.value("groups", 1) == 1)) &&
        std::none_of(config.exclude.begin(), config.exclude.end(), [&](const std::string& p) { return name_matches(p, n.name); }))
      names.push_back(n.name);
  std::vector<FactorizedLayer> report;
  for (const std::string& name : names) report.push_back(factorize_layer(graph, name, config, nullptr));
  bool any_fits = std::any_of(report.begin(), report.end(), [](const FactorizedLayer& l) { return l.rank > 0; });
  if (config.rank > 0 && !report.empty() && !any_fits)
    throw UsageError(fmt::format("rank {} is larger than every weight matrix allows", config.rank), "--rank",
                     "choose a rank below the smaller side of the matrices");
  return report;
}

FactorizedLayer factorize_layer(nn::Graph& graph, const std::string& name, const FactorizeConfig& config,
                                const InputStatistics* stats) {
  const Tensor& w = graph.node(name).param("weight").value;
  const int64_t rows = w.shape()[0], cols = w.numel() / rows;
  FactorizedLayer layer{name, rows, cols, 0, w.numel(), w.numel(), 1.0, false, ""};
  if (config.rank > std::min(rows, cols)) {
    layer.reason = fmt::format("rank {} exceeds what a {}x{} matrix has", config.rank, rows, cols);
    return layer;
  }
  LowRankFactors f = factor_weight(w, config, stats);
  layer.rank = f.rank;
  layer.energy_kept = f.energy_kept;
  if (f.rank * (rows + cols) >= rows * cols) {
    layer.reason = fmt::format("rank {} would not save parameters ({} >= {})", f.rank, f.rank * (rows + cols), rows * cols);
    return layer;
  }
  replace_with_factors(graph, name, f);
  layer.factored = true;
  layer.params_after = f.rank * (rows + cols);
  return layer;
}

}  // namespace shrink::compress
