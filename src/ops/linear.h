// Int4Linear layers that read the same input (a decoder block's q/k/v projections, the MLP's
// gate and up) run together when decoding: the input is quantized once and one parallel region
// splits all their rows between the threads, instead of one quantization and one fork/join per
// layer (for SmolLM2's 192-row k and v projections those cost as much as the product).
#pragma once
#include <span>
#include <vector>

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

}  // namespace shrink::nn::ops
