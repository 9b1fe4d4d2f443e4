// One-shot pruning of language models: magnitude, Wanda, SparseGPT (see llm_prune.h).
#include "shrink/compress/llm_prune.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>

#include "compress/block_calibration.h"
#include "compress/obs_update.h"
#include "shrink/core/error.h"
#include "shrink/core/parallel.h"
#include "shrink/core/progress.h"
#include "shrink/kernels/registry.h"

namespace shrink::compress {
namespace {

// Marks (1) the `count` lowest of scores[0, size), ties by position.
void mark_lowest(const float* scores, int64_t size, int64_t count, uint8_t* pruned) {
  std::vector<int64_t> order(static_cast<size_t>(size));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] < scores[b]; });
  for (int64_t i = 0; i < count; ++i) pruned[order[size_t(i)]] = 1;
}

int64_t zeros_of(const Tensor& w) {
  int64_t z = 0;
  for (int64_t i = 0; i < w.numel(); ++i) z += w.data<float>()[i] == 0.f;
  return z;
}

// ||X_j|| of the inputs of `linears` (node indices) while the block runs on every calibration batch,
// keyed by input value (layers reading one value share it).
std::map<int, ChannelNorms> observe_input_norms(BlockCalibration& calib, const nn::Graph& g, const TransformerBlock& block,
                                                const std::vector<size_t>& linears) {
  std::map<int, ChannelNorms> norms;
  for (size_t n : linears) norms.try_emplace(g.nodes()[n].inputs[0], g.nodes()[n].param("weight").value.shape()[1]);
  calib.observe(block, value_keys(norms), [&](int value, const Tensor& x) {
    if (auto it = norms.find(value); it != norms.end()) it->second.add(x);
  });
  return norms;
}

}  // namespace

void SparsityTarget::validate(int64_t in_features) const {
  if (m > 0) {
    if (n <= 0 || n >= m) throw UsageError(fmt::format("{}:{} is not an N:M pattern with 0 < N < M", n, m), "--pattern");
    if (in_features % m)
      throw UsageError(fmt::format("{} inputs do not split into groups of {}", in_features, m), "--pattern");
  } else if (!(sparsity >= 0 && sparsity < 1)) {
    throw UsageError(fmt::format("sparsity must be in [0, 1), got {}", sparsity), "--sparsity");
  }
}

std::string SparsityTarget::describe() const {
  return m > 0 ? fmt::format("{}:{}", n, m) : fmt::format("{:g}% unstructured", sparsity * 100);
}

SparseGptResult sparsegpt_prune(const Tensor& weight, const Tensor& hessian, const SparsityTarget& target,
                                const SparseGptOptions& options) {
  if (weight.rank() != 2) throw UsageError("SparseGPT takes (out, in) weights");
  const int64_t rows = weight.shape()[0], cols = weight.shape()[1];
  target.validate(cols);
  if (hessian.shape() != Shape{cols, cols}) throw UsageError("SparseGPT: the Hessian must be (in, in)");
  if (options.block <= 0 || (target.m > 0 && options.block % target.m))
    throw UsageError("SparseGPT: the block must be positive and a multiple of M");
  Tensor w_tensor = weight.to(DType::f32).contiguous().clone();
  float* w = w_tensor.mutable_data<float>();
  std::vector<float> h;
  SparseGptResult result;
  result.dead_columns = hessian_without_dead_columns(hessian, w, rows, cols, h);
  InverseHessianFactor factor = inverse_hessian_factor(h, cols, options.damp);
  const std::vector<float>& hinv = factor.upper;
  result.damp = factor.damp, result.retries = factor.retries;

  std::vector<double> losses(static_cast<size_t>(rows), 0.0);
  for (int64_t i1 = 0; i1 < cols; i1 += options.block) {
    const int64_t i2 = std::min(i1 + options.block, cols), count = i2 - i1;
    std::vector<float> w1(size_t(rows * count)), err(size_t(rows * count)), score(size_t(rows * count));
    std::vector<uint8_t> pruned(size_t(rows * count), 0);
    for (int64_t r = 0; r < rows; ++r) std::copy_n(w + r * cols + i1, count, w1.data() + r * count);
    auto score_of = [&](int64_t r, int64_t j) {
      const float d = hinv[size_t((i1 + j) * cols + i1 + j)];
      return w1[size_t(r * count + j)] * w1[size_t(r * count + j)] / (d * d);
    };
    if (target.m == 0) {  // the block's mask at once, over all its rows and columns
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < count; ++j) score[size_t(r * count + j)] = score_of(r, j);
      mark_lowest(score.data(), rows * count, int64_t(double(rows * count) * target.sparsity), pruned.data());
    }
    obs_block(rows, count, hinv.data() + i1 * cols + i1, cols, w1.data(), err.data(), losses.data(),
              [&](int64_t r, int64_t i, float x) {
                if (target.m > 0 && i % target.m == 0) {  // this group's mask from the row as updated so far
                  for (int64_t j = i; j < i + target.m; ++j) score[size_t(r * count + j)] = score_of(r, j);
                  mark_lowest(score.data() + r * count + i, target.m, target.m - target.n, pruned.data() + r * count + i);
                }
                const float q = pruned[size_t(r * count + i)] ? 0.f : x;
                w[r * cols + i1 + i] = q;
                return q;
              });
    obs_block_update(rows, cols, i1, i2, err.data(), hinv.data(), w);
  }
  for (double l : losses) result.loss += l;
  result.weight = w_tensor;
  return result;
}

Tensor wanda_prune(const Tensor& weight, std::span<const float> input_norms, const SparsityTarget& target) {
  if (weight.rank() != 2) throw UsageError("Wanda takes (out, in) weights");
  const int64_t rows = weight.shape()[0], cols = weight.shape()[1];
  target.validate(cols);
  if (int64_t(input_norms.size()) != cols) throw UsageError("Wanda: one input norm per column");
  Tensor w = weight.to(DType::f32).contiguous().clone();
  float* d = w.mutable_data<float>();
  std::vector<float> score(static_cast<size_t>(cols));
  std::vector<uint8_t> pruned(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) score[size_t(j)] = std::fabs(d[r * cols + j]) * input_norms[size_t(j)];
    std::fill(pruned.begin(), pruned.end(), 0);
    if (target.m > 0) {
      for (int64_t g = 0; g < cols; g += target.m)
        mark_lowest(score.data() + g, target.m, target.m - target.n, pruned.data() + g);
    } else {
      mark_lowest(score.data(), cols, int64_t(double(cols) * target.sparsity), pruned.data());
    }
    for (int64_t j = 0; j < cols; ++j)
      if (pruned[size_t(j)]) d[r * cols + j] = 0.f;
  }
  return w;
}

void ChannelNorms::add(const Tensor& x) {
  const Tensor c = x.contiguous();
  const int64_t dim = int64_t(sum_.size());
  if (c.shape()[c.rank() - 1] != dim) throw UsageError("ChannelNorms: activations of another width");
  const float* v = c.data<float>();
  for (int64_t r = 0; r < c.numel() / dim; ++r)
    for (int64_t j = 0; j < dim; ++j) sum_[size_t(j)] += double(v[r * dim + j]) * v[r * dim + j];
}

std::vector<float> ChannelNorms::norms() const {
  std::vector<float> out(sum_.size());
  for (size_t j = 0; j < out.size(); ++j) out[j] = float(std::sqrt(sum_[j]));
  return out;
}

std::map<std::string, std::vector<float>> block_linear_input_norms(
    nn::Graph& g, const std::vector<std::vector<int32_t>>& calibration, int64_t batch, bool quiet) {
  std::vector<TransformerBlock> blocks = find_transformer_blocks(g);
  if (blocks.empty()) throw UnsupportedError("the model has no transformer blocks (nodes named '*.layers.<i>.*')");
  if (calibration.empty()) throw UsageError("activation statistics need calibration text", "--calib");
  BlockCalibration calib(g, calibration, batch, blocks[0]);
  std::map<std::string, std::vector<float>> result;
  ProgressLine progress("activation statistics, block", int64_t(blocks.size()), quiet);
  for (size_t bi = 0; bi < blocks.size(); ++bi) {
    const std::vector<size_t> linears = block_linears(g, blocks[bi], {});
    const std::map<int, ChannelNorms> norms = observe_input_norms(calib, g, blocks[bi], linears);
    for (size_t n : linears) result[g.nodes()[n].name] = norms.at(g.nodes()[n].inputs[0]).norms();
    if (bi + 1 < blocks.size()) calib.advance(blocks[bi]);  // the last block's outputs feed nothing
    progress.update(int64_t(bi + 1));
  }
  progress.finish();
  return result;
}

LlmPruneReport prune_language_model(io::LanguageModel& model, const std::vector<std::vector<int32_t>>& calibration,
                                    const LlmPruneOptions& o) {
  if (o.method != "magnitude" && o.method != "wanda" && o.method != "sparsegpt")
    throw UsageError(fmt::format("unknown language-model pruning method '{}' (magnitude, wanda, sparsegpt)", o.method),
                     "--method");
  const auto start = std::chrono::steady_clock::now();
  nn::Graph& g = model.graph;
  std::vector<TransformerBlock> blocks = find_transformer_blocks(g);
  if (blocks.empty()) throw UnsupportedError("the model has no transformer blocks (nodes named '*.layers.<i>.*')");
  o.target.validate(std::max<int64_t>(o.target.m, 1));  // its own numbers, before any layer's width
  size_t layers = 0;
  for (const TransformerBlock& b : blocks)
    for (size_t n : block_linears(g, b, o.exclude)) o.target.validate(g.nodes()[n].param("weight").value.shape()[1]), ++layers;
  if (layers == 0)  // e.g. a quantized model: its packed layers are not pruned (and --sparsity 1.5 went unchecked)
    throw UsageError("the model's transformer blocks have no f32 Linear layers to prune (quantized layers are not "
                     "pruned: prune the f32 model, then quantize it)");
  LlmPruneReport report;
  auto record = [&](size_t n, Tensor w, double loss) {
    nn::Node& node = g.nodes()[n];
    const int64_t zeros = zeros_of(w);
    report.layers.push_back({node.name, double(zeros) / double(w.numel()), loss});
    report.weights += w.numel(), report.zeros += zeros;
    node.param("weight").value = std::move(w);
    node.prepared = nullptr;
    node.attrs["pruning"] = {{"method", o.method}, {"target", o.target.describe()}};
    if (o.target.n == 2 && o.target.m == 4 && node.param("weight").value.shape()[1] % 8 == 0)
      node.attrs["sparse_2of4"] = true;  // decoding runs through the 2:4 kernel
  };
  ProgressLine progress(o.method + " block", int64_t(blocks.size()), o.quiet);
  if (o.method == "magnitude") {
    for (size_t bi = 0; bi < blocks.size(); ++bi) {
      for (size_t n : block_linears(g, blocks[bi], o.exclude)) {
        Tensor w = g.nodes()[n].param("weight").value.contiguous().clone();
        const int64_t rows = w.shape()[0], cols = w.shape()[1];
        std::vector<float> score(static_cast<size_t>(w.numel()));
        for (int64_t i = 0; i < w.numel(); ++i) score[size_t(i)] = std::fabs(w.data<float>()[i]);
        std::vector<uint8_t> pruned(score.size(), 0);
        if (o.target.m > 0) {
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; c += o.target.m)
              mark_lowest(score.data() + r * cols + c, o.target.m, o.target.m - o.target.n, pruned.data() + r * cols + c);
        } else {
          mark_lowest(score.data(), w.numel(), int64_t(double(w.numel()) * o.target.sparsity), pruned.data());
        }
        for (int64_t i = 0; i < w.numel(); ++i)
          if (pruned[size_t(i)]) w.mutable_data<float>()[i] = 0.f;
        record(n, w, 0);
      }
      progress.update(int64_t(bi + 1));
    }
  } else {
    if (calibration.empty()) throw UsageError(fmt::format("{} calibrates on text", o.method), "--calib");
    BlockCalibration calib(g, calibration, o.batch, blocks[0]);
    report.calibration_tokens = calib.tokens();
    for (size_t bi = 0; bi < blocks.size(); ++bi) {
      const TransformerBlock& b = blocks[bi];
      const std::vector<size_t> linears = block_linears(g, b, o.exclude);
      if (o.method == "wanda") {
        const std::map<int, ChannelNorms> norms = observe_input_norms(calib, g, b, linears);
        for (size_t n : linears)
          record(n, wanda_prune(g.nodes()[n].param("weight").value, norms.at(g.nodes()[n].inputs[0]).norms(), o.target), 0);
      } else {
        std::map<int, HessianAccumulator> hessians;
        for (size_t n : linears) hessians.try_emplace(g.nodes()[n].inputs[0], g.nodes()[n].param("weight").value.shape()[1]);
        calib.observe(b, value_keys(hessians), [&](int value, const Tensor& x) {
          if (auto it = hessians.find(value); it != hessians.end()) it->second.add(x);
        });
        for (size_t n : linears) {
          SparseGptResult r = sparsegpt_prune(g.nodes()[n].param("weight").value,
                                              hessians.at(g.nodes()[n].inputs[0]).hessian(), o.target, o.sparsegpt);
          if (r.retries && !o.quiet)
            std::fprintf(stderr, "\n%s: Cholesky failed %d time(s); damping raised to %g of mean(diag H)\n",
                         g.nodes()[n].name.c_str(), r.retries, r.damp);
          record(n, r.weight, r.loss);
        }
      }
      if (bi + 1 < blocks.size()) calib.advance(b);  // the last block's outputs feed nothing
      progress.update(int64_t(bi + 1));
    }
  }
  progress.finish();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.peak_rss_bytes = peak_rss_bytes();
  return report;
}

}  // namespace shrink::compress
