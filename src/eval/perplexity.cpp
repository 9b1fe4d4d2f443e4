#include "shrink/eval/perplexity.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "shrink/core/error.h"
#include "shrink/core/max_value.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/registry.h"
#include "shrink/nn/execute.h"

namespace shrink::eval {

// The negative log-likelihoods of the targets, summed: per row log sum_j exp(logit_j - max) + max
// - logit_target. The exponentials through the registry's kernel (a few ulp, in float; 49,152 of
// them a row for SmolLM2, where libm's double exp had been 7% of an evaluation), summed in double
// over eight running partial sums.
double sum_nll(const float* logits, const int32_t* targets, int64_t rows, int64_t vocabulary) {
  std::vector<double> per_row(static_cast<size_t>(rows));
  parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    constexpr int64_t kLanes = 8;
    std::vector<float> shifted(static_cast<size_t>(vocabulary));
    for (int64_t r = begin; r < end; ++r) {
      const float* row = logits + r * vocabulary;
      const float top = max_value(row, vocabulary);
      for (int64_t j = 0; j < vocabulary; ++j) shifted[size_t(j)] = row[j] - top;
      kernels().exp_f32(shifted.data(), shifted.data(), vocabulary);
      double partial[kLanes] = {};
      int64_t j = 0;
      for (; j + kLanes <= vocabulary; j += kLanes)
        for (int64_t l = 0; l < kLanes; ++l) partial[l] += shifted[size_t(j + l)];
      double sum = 0;
      for (; j < vocabulary; ++j) sum += shifted[size_t(j)];
      for (double part : partial) sum += part;
      per_row[size_t(r)] = std::log(sum) + double(top) - double(row[targets[r]]);
    }
  });
  double total = 0;
  for (double v : per_row) total += v;
  return total;
}

PerplexityReport evaluate_perplexity(nn::Graph& graph, std::span<const int32_t> stream, int64_t context,
                                     int64_t max_windows,
                                     const std::function<void(int64_t, int64_t, double)>& progress) {
  if (context < 2) throw UsageError("the context must be at least 2 tokens", "--ctx");
  PerplexityReport r;
  r.context = context;
  r.stream_tokens = int64_t(stream.size());
  int64_t total = int64_t(stream.size()) / context;
  if (total == 0)
    throw UsageError(fmt::format("the text has {} tokens, fewer than one window of {}", stream.size(), context), "--ctx");
  if (max_windows > 0) total = std::min(total, max_windows);
  auto start = std::chrono::steady_clock::now();
  double nll_total = 0;
  for (int64_t w = 0; w < total; ++w) {
    Tensor tokens = Tensor::uninitialized(Shape{1, context}, DType::i64);
    int64_t* t = tokens.mutable_data<int64_t>();
    const int32_t* window = stream.data() + w * context;
    for (int64_t i = 0; i < context; ++i) t[i] = window[i];
    std::vector<Tensor> out = nn::forward(graph, std::span<const Tensor>(&tokens, 1));
    const Tensor logits = out.at(0).contiguous();
    if (logits.rank() != 3 || logits.shape()[1] != context)
      throw UsageError(fmt::format("the model's output {} is not (1, {}, vocabulary) logits", logits.shape().to_string(), context));
    int64_t vocabulary = logits.shape()[2];
    for (int64_t i = 1; i < context; ++i)
      if (window[i] < 0 || window[i] >= vocabulary)
        throw UsageError(fmt::format("token id {} is outside the model's vocabulary of {}", window[i], vocabulary));
    nll_total += sum_nll(logits.data<float>(), window + 1, context - 1, vocabulary);
    r.predicted += context - 1;
    r.windows = w + 1;
    if (progress) progress(w + 1, total, std::exp(nll_total / double(r.predicted)));
  }
  r.nll = nll_total / double(r.predicted);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace shrink::eval
