// AWQ, activation-aware weight quantization (Lin et al. 2023, "AWQ: Activation-aware Weight
// Quantization for LLM Compression and Acceleration", and their reference code llm-awq,
// awq/quantize/auto_scale.py and auto_clip.py).
//
// For each group of Linear layers that read one value X (q/k/v; gate/up; o; down):
// - the mean magnitude of every input channel, m_j = mean |X_j| over the calibration tokens;
// - candidate scales s = max(m^alpha, 1e-4) / sqrt(max s * min s) for alpha = 0, 1/20, ..., 19/20;
//   for each, the layers' weights become Q(W diag(s)) diag(s)^-1 (RTN at the target bits and
//   group) and the output error of the module the layers feed is measured: the attention
//   sub-layer for q/k/v and the MLP for gate/up (run by the graph on the calibration inputs), the
//   layer itself for o and down (exactly, from the Gram matrix X^T X, without running it);
// - the best s is folded away: the layers' input columns are multiplied by s and the op that
//   produces X divides its output channels by s (the RMSNorm/LayerNorm weight, the rows of the
//   previous Linear, the up projection of a gated MLP, or v's rows for the attention output,
//   tied across the query heads that share a key/value head when attention is grouped — the
//   reference skips o when v and o differ in shape; shrink scales it with tied scales);
// - then the clipping search: per output row and group, the weights clamped to +-r max|w| for
//   r = 1, 0.95, ..., 0.55 (max_shrink 0.5), keeping the r with the least error of the group's
//   partial products on 512 calibration tokens (q and k are not clipped, as in the reference).
// alpha = 0 (s = 1) and r = 1 are candidates, so on the calibration data AWQ's error is never
// worse than RTN's for the module searched.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "shrink/compress/gptq.h"
#include "shrink/nn/graph.h"

namespace shrink::compress {

struct AwqOptions {
  bool scale = true, clip = true;
  int scale_grid = 20;                 // alpha = i / scale_grid, i < scale_grid
  int clip_grid = 20;                  // r = 1 - i / clip_grid
  double max_shrink = 0.5;             // i < max_shrink * clip_grid
  int64_t clip_tokens = 512;           // calibration rows the clipping search uses (every k-th)
  // Calibration sequences the attention and MLP output search runs on, 21 times each (0: all).
  // The channel magnitudes, the Gram matrices of o and down and the clipping rows use every
  // sequence. 8 x 512 tokens take SmolLM2-135M about 7 minutes on two cores.
  int64_t search_sequences = 8;
};

// s for one alpha from the channel magnitudes.
std::vector<float> awq_scales(std::span<const float> magnitude, double alpha);

// Q(W diag(s)) diag(s)^-1: the weights a scale candidate computes with (RTN in `config`).
Tensor awq_scaled_quantize(const Tensor& weight, std::span<const float> column_scale, const WeightOnlyConfig& config);

// The clipping search on weights W (out, in) with calibration inputs X (rows, in): W clamped per
// row and group to the best +-r max|w|, and the summed squared error of the group partial
// products before (r = 1) and after.
struct AwqClipResult {
  Tensor weight;
  double loss_unclipped = 0, loss = 0;
};
AwqClipResult awq_clip(const Tensor& weight, const Tensor& inputs, const WeightOnlyConfig& config,
                       const AwqOptions& options = {});

// Mean |x| per channel over the rows of activations (..., dim).
class ChannelMagnitude {
 public:
  explicit ChannelMagnitude(int64_t dim) : sum_(size_t(dim), 0.0) {}
  void add(const Tensor& x);
  std::vector<float> mean() const;

 private:
  std::vector<double> sum_;
  int64_t rows_ = 0;
};

struct AwqGroupReport {
  std::string layers;     // "q_proj,k_proj,v_proj"
  std::string folded_into;  // the op that absorbed 1/s ("" when nothing could)
  double alpha = 0;
  double loss_rtn = 0, loss = 0;  // module output error at alpha = 0 and at the chosen alpha
};
struct AwqLayerReport {
  std::string name;
  double loss_unclipped = 0, loss = 0;  // clipping search (0 and 0 when not clipped)
};

// Scales and clips the f32 weights of the Linear nodes `linears` of nodes [first, last) in place,
// from the block input value `input` given as `hidden` (batches of sequences); the weights
// stay f32 for the caller to quantize with rtn_quantize in `config`. The block's f32 function is
// unchanged by the scaling (up to rounding); clipping changes it.
void awq_block(nn::Graph& graph, size_t first, size_t last, int input, std::span<const Tensor> hidden,
               const std::vector<size_t>& linears, const WeightOnlyConfig& config, const AwqOptions& options,
               std::vector<AwqGroupReport>* groups, std::vector<AwqLayerReport>* layers);

}  // namespace shrink::compress
