// Sequential (block-by-block) calibration of a transformer, shared by weight-only quantization
// (llm_quantize.cpp) and one-shot pruning (llm_prune.cpp), as the GPTQ/SparseGPT/Wanda reference
// code runs it: the calibration windows are embedded once; then for each block the caller
// observes the block's values on every window (Hessians, channel norms), changes the block's
// Linear layers, and advance() runs the changed block to make the next block's inputs.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::compress {

struct TransformerBlock {
  size_t first = 0, last = 0;   // node range
  int input = -1, output = -1;  // the residual stream in and out
};

// Maximal runs of nodes named "<prefix>.layers.<i>.<...>" (Llama) or "<prefix>.layer.<i>.<...>"
// (BERT), each reading one outside value and feeding one value onward.
std::vector<TransformerBlock> find_transformer_blocks(const nn::Graph& graph);

// The block's Linear nodes whose names match none of the globs in `exclude`.
std::vector<size_t> block_linears(const nn::Graph& graph, const TransformerBlock& block,
                                  const std::vector<std::string>& exclude);

class BlockCalibration {
 public:
  // UsageError for no windows or windows of different lengths.
  BlockCalibration(nn::Graph& graph, const std::vector<std::vector<int32_t>>& windows, int64_t batch,
                   const TransformerBlock& first_block);
  // Runs `block` on every batch, showing the block input and each node's outputs to `observe`,
  // but only as far as the last node producing one of the `needed` values (the Hessian pass of
  // GPTQ stops before down_proj's product and the residual add: a quarter of the block's
  // multiply-adds).
  void observe(const TransformerBlock& block, const std::vector<int>& needed,
               const std::function<void(int value, const Tensor&)>& observe);
  // Replaces the hidden states by the (changed) block's outputs.
  void advance(const TransformerBlock& block);
  // True-sequential calibration (GPTQ-for-LLaMa's --true-sequential, AutoGPTQ's default) in one
  // pass over the block: the block runs in stages, each ending at the node that produces one of
  // `stage_values` (the Linear layers' inputs; any order). When a stage has run on every batch,
  // `observe` has seen its value on each batch, and `after_stage(value)` may change the Linear
  // layers reading it: the later stages run them changed, so each layer is calibrated on the
  // inputs the block gives it once the layers before it are quantized. Between stages each
  // batch keeps only the values later nodes read (for a Llama block at most the residual stream
  // and the MLP's hidden activations). With `advance` the rest of the block runs too and hidden()
  // becomes its outputs (what advance() would give); without (the last block) the hidden states
  // are released.
  void run_in_stages(const TransformerBlock& block, std::vector<int> stage_values,
                     const std::function<void(int value, const Tensor&)>& observe,
                     const std::function<void(int value)>& after_stage, bool advance);
  const std::vector<Tensor>& hidden() const { return hidden_; }  // batches entering the current block
  int64_t tokens() const { return tokens_; }
  int64_t hidden_bytes() const { return hidden_bytes_; }

 private:
  nn::Graph& graph_;
  std::vector<Tensor> hidden_;
  int64_t tokens_ = 0, hidden_bytes_ = 0;
};

int64_t peak_rss_bytes();  // of this process

// The keys of a map of per-value statistics, as observe()'s `needed`.
template <class Map> std::vector<int> value_keys(const Map& by_value) {
  std::vector<int> keys;
  for (const auto& entry : by_value) keys.push_back(entry.first);
  return keys;
}

}  // namespace shrink::compress
