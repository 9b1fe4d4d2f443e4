// Median wall time of a graph's forward pass, for the benchmarks that compare graphs side by side.
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

#include "shrink/nn/execute.h"

namespace shrink::bench {

// One warm-up pass first (it also builds prepared kernel layouts such as packed int8 weights).
inline double median_forward_ms(nn::Graph& graph, const Tensor& x, int repeats) {
  std::vector<Tensor> inputs{x};
  nn::forward(graph, inputs);
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    nn::forward(graph, inputs);
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace shrink::bench
