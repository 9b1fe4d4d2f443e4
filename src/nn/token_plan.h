// A decoded token's work, planned once: every node of the graph as a step with its inputs and
// outputs in slots that live as long as the decoder, the products' sets and the attention shapes
// made ready, and a single token's small steps fused. Running a token then walks the steps and
// calls the kernels; forward_segment's per-node bookkeeping (values gathered and released, the op
// looked up by name, outputs allocated, attributes read again) is gone. Steps the plan has no
// special form for (the embedding lookup, the head, anything else a graph holds) run their op as
// forward() would, into their slots.
// Internal to the decoder (nn/decoder.cpp).
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "ops/linear.h"
#include "shrink/nn/decoder.h"
#include "shrink/nn/graph.h"

namespace shrink::nn {

// A single token's elementwise step and the node it feeds, run as one: at `Add` the sum and the
// RMSNorm of it, at `SiLU` SiLU(gate) x up for the `Mul` after it (whose other input is an
// Int4Linear's output that its set computes before the SiLU). Each skips one node's allocation,
// lookups and dispatch, and a pass over the values.
struct FusedStep {
  enum class Kind { none, add_then_norm, silu_then_mul } kind = Kind::none;
  int partner = -1;  // the node whose output this step computes too (the norm, the Mul)
  int other = -1;    // silu_then_mul: the node whose output is the Mul's other input
  Tensor weight;     // add_then_norm: the norm's weight (f32, contiguous) and eps
  float eps = 0;
};

// What the decoder has worked out about its graph, by node index.
struct TokenPlanParts {
  std::span<const std::vector<Node*>> sets;  // Int4Linear layers reading one input, at the first
  std::span<const int> product_first;        // the first node of the product a node belongs to, or -1
  std::span<const FusedStep> fused;
  std::span<const std::span<const std::byte>> next_weights;  // read ahead by the team's helpers
};

class TokenPlan {
 public:
  // From the values one token took through the node-by-node path (by value id; their shapes fix
  // the slots'). Slots of the plan's own steps are allocated here. UnsupportedError where an
  // Attention node's inputs are not single f32 rows (the decoder then keeps the node-by-node path).
  TokenPlan(Graph& graph, const TokenPlanParts& parts, std::span<const Tensor> token_values);
  ~TokenPlan();

  // One token (ids: (1, 1) i64) through the graph; the output value (the logits). profile, when
  // given: time per node kind (a fused step's time goes to its first node, the nodes it covers
  // count a call each).
  Tensor run(const Tensor& ids, std::vector<ops::KvCache>& caches, std::map<std::string, Decoder::KindTime>* profile);

  // How many steps run a special form (not the op's own forward).
  int64_t planned_steps() const;

 private:
  struct Step;
  Graph& graph_;
  std::vector<Step> steps_;
  std::vector<Tensor> values_;  // by value id
};

}  // namespace shrink::nn
