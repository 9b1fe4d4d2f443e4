// Plain SVD factorization of Linear and Conv2d layers.
#include "shrink/compress/lowrank.h"

#include <fmt/format.h>

#include <algorithm>

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

namespace {

int64_t choose_rank(const FactorizeConfig& config, const Svd& d) {
  if (config.rank > 0) return config.rank;
  if (config.ratio > 0)
    return std::max<int64_t>(1, int64_t(config.ratio * double(d.rows * d.cols) / double(d.rows + d.cols)));
  double total = 0, kept = 0;
  for (float v : d.s) total += double(v) * v;
  for (int64_t r = 0; r < d.k; ++r) {
    kept += double(d.s[size_t(r)]) * d.s[size_t(r)];
    if (kept >= config.energy * total) return r + 1;
  }
  return d.k;
}

Tensor copy_to_tensor(const std::vector<float>& v, const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::f32);
  std::copy(v.begin(), v.end(), t.mutable_data<float>());
  return t;
}

}  // namespace

std::vector<FactorizedLayer> factorize(nn::Graph& graph, const FactorizeConfig& config) {
  if (config.rank <= 0 && config.ratio <= 0 && config.energy <= 0)
    throw UsageError("choose a rank, a parameter ratio or an energy to keep", "factorize");
  if (config.ratio < 0 || config.ratio >= 1) throw UsageError("the ratio must be in (0, 1)", "--ratio");
  if (config.energy < 0 || config.energy > 1) throw UsageError("the energy must be in (0, 1]", "--energy");
  std::vector<std::string> names;
  for (const nn::Node& n : graph.nodes())
    if ((n.kind == "Linear" || (n.kind == "Conv2d" && n.attrs.value("groups", 1) == 1)) &&
        std::none_of(config.exclude.begin(), config.exclude.end(), [&](const std::string& p) { return name_matches(p, n.name); }))
      names.push_back(n.name);
  std::vector<FactorizedLayer> report;
  for (const std::string& name : names) {
    const nn::Node node = graph.node(name);
    const Tensor w = node.param("weight").value.contiguous();
    int64_t rows = w.shape()[0], cols = w.numel() / rows;
    FactorizedLayer layer{name, rows, cols, 0, w.numel(), w.numel(), 1.0, false, ""};
    if (config.rank > std::min(rows, cols)) {
      layer.reason = fmt::format("rank {} exceeds what a {}x{} matrix has", config.rank, rows, cols);
      report.push_back(layer);
      continue;
    }
    Svd d = svd(w.data<float>(), rows, cols);
    int64_t r = std::min(choose_rank(config, d), d.k);
    double total = 0, kept = 0;
    for (int64_t j = 0; j < d.k; ++j) total += double(d.s[size_t(j)]) * d.s[size_t(j)];
    for (int64_t j = 0; j < r; ++j) kept += double(d.s[size_t(j)]) * d.s[size_t(j)];
    layer.rank = r;
    layer.energy_kept = total > 0 ? kept / total : 1.0;
    if (r * (rows + cols) >= rows * cols) {
      layer.reason = fmt::format("rank {} would not save parameters ({} >= {})", r, r * (rows + cols), rows * cols);
      report.push_back(layer);
      continue;
    }
    // first: (r, cols) = vt rows; second: (rows, r) = u * s
    std::vector<float> first(d.vt.begin(), d.vt.begin() + r * cols), second(static_cast<size_t>(rows * r));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < r; ++j) second[size_t(i * r + j)] = d.u[size_t(i * d.k + j)] * d.s[size_t(j)];
    nn::Node down = node, up = node;
    down.name = name + ".low_rank";
    down.params.clear();
    up.params.clear();
    if (node.kind == "Linear") {
      down.attrs["out_features"] = r;
      down.params.push_back({"weight", copy_to_tensor(first, Shape{r, cols}), {}, true});
      up.attrs["in_features"] = r;
      up.params.push_back({"weight", copy_to_tensor(second, Shape{rows, r}), {}, true});
    } else {
      const Shape& ws = w.shape();
      down.attrs["out_channels"] = r;
      down.params.push_back({"weight", copy_to_tensor(first, Shape{r, ws[1], ws[2], ws[3]}), {}, true});
      up.attrs = {{"in_channels", r}, {"out_channels", rows}, {"kernel_size", 1}};
      up.params.push_back({"weight", copy_to_tensor(second, Shape{rows, r, 1, 1}), {}, true});
    }
    if (const nn::Param* bias = node.find_param("bias")) up.params.push_back(*bias);
    graph.replace_with_chain(name, {down, up});
    layer.factored = true;
    layer.params_after = r * (rows + cols);
    report.push_back(layer);
  }
  bool any_fits = std::any_of(report.begin(), report.end(), [](const FactorizedLayer& l) { return l.rank > 0; });
  if (config.rank > 0 && !report.empty() && !any_fits)
    throw UsageError(fmt::format("rank {} is larger than every weight matrix allows", config.rank), "--rank",
                     "choose a rank below the smaller side of the matrices");
  return report;
}

}  // namespace shrink::compress
