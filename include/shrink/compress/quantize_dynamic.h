// Dynamic quantization (PyTorch's quantize_dynamic): Linear, LSTM and GRU weights to int8 per
// output channel, activations quantized per row when the layer runs, biases kept f32. Everything
// else stays f32. Convolutions are refused: one range per im2col row of a convolution's input is
// what PyTorch also declines to do dynamically, and static quantization serves them better.
#pragma once
#include <string>
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::compress {

struct DynamicQuantConfig {
  std::vector<std::string> layers;   // node-name globs to quantize; empty: every eligible layer
  std::vector<std::string> exclude;  // node-name globs left f32
};

struct DynamicQuantLayer {
  std::string node, kind;
  bool quantized = false;
  std::string reason;              // why it was left f32
  int64_t bytes_before = 0;        // its parameters' bytes
  int64_t bytes_after = 0;
};

// Rewrites the graph in place; returns one entry per Linear/Conv2d/LSTM/GRU/Embedding node.
// UsageError when `layers` names a convolution (refused) or matches no eligible layer.
std::vector<DynamicQuantLayer> quantize_dynamic(nn::Graph& graph, const DynamicQuantConfig& config);

}  // namespace shrink::compress
