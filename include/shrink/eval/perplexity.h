// Perplexity of a language model by the protocol of the GPTQ and AWQ papers (Frantar et al. 2022,
// Lin et al. 2023; their evaluation code): the whole text tokenized as one stream, cut into
// non-overlapping windows of `context` tokens (the tail shorter than a window is dropped), each
// window run on its own from an empty cache, every position but the last predicting the next
// token, perplexity = exp(mean negative log-likelihood over all predicted tokens). The papers'
// code multiplies each window's mean loss by the window length, which gives the same mean.
#pragma once
#include <cmath>
#include <functional>
#include <span>
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::eval {

struct PerplexityReport {
  int64_t windows = 0, context = 0, predicted = 0;  // tokens scored
  int64_t stream_tokens = 0;                          // the whole tokenized text
  double nll = 0;                                     // mean, nats per token
  double seconds = 0;
  double perplexity() const { return std::exp(nll); }
};

// `graph`: input tokens (1, T) i64 -> logits (1, T, V). max_windows = 0: all of them.
// progress(windows done, windows total, running perplexity).
PerplexityReport evaluate_perplexity(nn::Graph& graph, std::span<const int32_t> stream, int64_t context,
                                     int64_t max_windows = 0,
                                     const std::function<void(int64_t, int64_t, double)>& progress = {});

// Mean negative log-likelihood (nats) of targets[t] under logits row t (rows of width V).
double sum_nll(const float* logits, const int32_t* targets, int64_t rows, int64_t vocabulary);

}  // namespace shrink::eval
