// Dynamic quantization (PyTorch's quantize_dynamic): Linear, LSTM and GRU weights to int8 per
// output channel, activations quantized per row when the layer runs, biases kept f32. Everything
// else stays f32. Convolutions only when asked for (`convolutions`, or by name in `layers`):
// DynamicQuantConv2d quantizes each output position's receptive field with its own range, which
// PyTorch does not offer; for image CNNs static quantization (int8 between layers) is faster,
// but it needs calibration data, and a waveform's frames want a range each (see
// docs/results.md, "dynamic int8 convolutions").
#pragma once
#include <string>
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::compress {

struct DynamicQuantConfig {
  std::vector<std::string> layers;   // node-name globs to quantize; empty: every eligible layer
  std::vector<std::string> exclude;  // node-name globs left f32
  bool convolutions = false;         // Conv2d too (DynamicQuantConv2d)
  bool embeddings = false;           // Embedding tables too: int8 per row, dequantized as looked up
};

struct DynamicQuantLayer {
  std::string node, kind;
  bool quantized = false;
  std::string reason;              // why it was left f32
  // Its parameters' bytes. A quantized layer counts each tensor only if no earlier quantized
  // layer holds it: an output layer tied to an embedding table quantized with it counts only what
  // it holds apart (its weight is the table's, before and after), so that the quantized layers'
  // bytes sum to what the model holds for them.
  int64_t bytes_before = 0;
  int64_t bytes_after = 0;
  std::string shares_weight_with;  // the earlier quantized layer whose weight this one holds, or ""
};

// Rewrites the graph in place; returns one entry per Linear/Conv2d/LSTM/GRU node and f32 Embedding.
// UsageError when `layers` matches no eligible layer.
std::vector<DynamicQuantLayer> quantize_dynamic(nn::Graph& graph, const DynamicQuantConfig& config);

// Whether quantize_dynamic would quantize a convolution of `graph`. Fold the batch norms first
// then (fold_batch_norms in quantize_static.h: exact at inference, and `shrink quantize` does):
// a batch norm left after an int8 convolution costs another f32 pass over its output.
bool quantizes_convolutions(const nn::Graph& graph, const DynamicQuantConfig& config);

}  // namespace shrink::compress
