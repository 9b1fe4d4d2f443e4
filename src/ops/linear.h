// Int4Linear layers that read the same input (a decoder block's q/k/v projections, the MLP's
// gate and up) run together when decoding: the input is quantized once and one parallel region
// splits all their rows between the threads, instead of one quantization and one fork/join per
// layer (for SmolLM2's 192-row k and v projections those cost as much as the product).
#pragma once
#include <span>
#include <vector>

#include "shrink/core/parallel.h"
#include "shrink/kernels/int4_gemm.h"
#include "shrink/nn/graph.h"

namespace shrink::nn::ops {

// True when these nodes can run through int4_linears_shared_input: all Int4Linear with the same
// in_features and group_size.
bool int4_linears_share_input(std::span<Node* const> nodes);

// Builds a layer's decoding form of its weights now rather than on its first decoding call (the
// decoder does this for every node when it is made, so that no decoded token pays for it): an
// Int4Linear's panel copy, a DynamicQuantLinear's packed int8 panels. Other nodes: nothing.
void prepare_for_decoding(Node& node);

// The bytes a decoded token reads of this node's weights, where they lie in one span (an
// Int4Linear's decode layout, a DynamicQuantLinear's packed int8 panels; made now if not yet);
// empty for other nodes.
std::span<const std::byte> decoding_weight_bytes(Node& node);

// x (..., in) -> one output per node, as each node's forward would give. Up to 4 rows (decoding),
// or any number with s8_activations (the decoder's prompts), the activations are quantized to s8
// per row and multiplied by the nibbles directly; otherwise (prompts through forward(), perplexity
// windows) f32 activations multiply the weights dequantized once, which keeps evaluation exact for
// the quantized weights. The s8 path read SmolLM2's prompts 1.3-2.4x faster (26 and 645 tokens).
std::vector<Tensor> int4_linears_shared_input(std::span<Node* const> nodes, const Tensor& x,
                                              bool s8_activations = false);

// Int4Linear layers that read one input, made ready once for int4_row_set_forward: their decode
// layouts, biases, how their rows split into the kernels' steps, and the threads' measured speeds
// for this set's shape. The decoder's token plan keeps one per set (or single layer) and so skips
// the lookups, allocations and the speeds table's lock that each call of
// int4_linears_shared_input pays for.
struct Int4RowSet {
  std::vector<Node*> nodes;
  std::vector<Int4Weights> weights;    // decode layouts
  std::vector<const float*> bias;      // by layer; null where none
  std::vector<int64_t> first_step;     // layer i's steps: [first_step[i], first_step[i + 1])
  int64_t k = 0, group = 0, unit = 4;  // input width, group size, rows a step
  ThreadSpeeds* speeds = nullptr;
  bool salient = false;  // some layer keeps salient input channels in 16 bits
};
Int4RowSet prepare_int4_row_set(std::span<Node* const> nodes);

// y[i] (rows x layer i's outputs, f32) = the rows of x (rows x k, f32) through layer i of the set,
// the activations quantized to s8 per row: what int4_linears_shared_input gives with s8
// activations, bit for bit.
void int4_row_set_forward(const Int4RowSet& set, const float* x, int64_t rows, float* const* y);

}  // namespace shrink::nn::ops
