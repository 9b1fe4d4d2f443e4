// Running a graph: forward in node order (optionally recording a tape), and reverse-mode
// autograd over that tape, accumulating into each trainable parameter's grad.
#pragma once
#include <functional>
#include <span>
#include <vector>

#include "shrink/core/rng.h"
#include "shrink/nn/graph.h"

namespace shrink::nn {

struct Tape {
  std::vector<Tensor> values;              // every value of the run, by value id
  std::vector<std::vector<Tensor>> saved;  // what each node kept for its backward
};

struct RunOptions {
  bool training = false;  // BatchNorm batch statistics, Dropout active
  Tape* tape = nullptr;   // record for backward; without one, values are freed after last use
  Rng* rng = nullptr;     // Dropout's randomness (a fixed-seed one when null)
  // Called after each node with its outputs (observers, per-layer error reports).
  std::function<void(const Node&, std::span<const Tensor>)> after_node;
  // forward_segment only: computes a node's outputs in place of its op (returns false to let
  // the op run). The decoder routes Attention through its key/value cache with it.
  std::function<bool(Node&, std::span<const Tensor>, std::vector<Tensor>&)> replace_forward;
};

// Checks the inputs against the graph's declared inputs (count, dtype, known dimensions) and
// returns the graph outputs.
std::vector<Tensor> forward(Graph& graph, std::span<const Tensor> inputs, const RunOptions& options = {});

// Runs only nodes [first, last) (eval mode, no tape): `given` holds every value they read that
// is produced outside the range (value id -> tensor); returns the values `wanted` (value ids
// produced in the range or given). Sequential calibration runs a model block by block with it.
std::vector<Tensor> forward_segment(Graph& graph, size_t first, size_t last,
                                    const std::vector<std::pair<int, Tensor>>& given, std::span<const int> wanted,
                                    const RunOptions& options = {});

// Gradients of the graph outputs in, parameter grads accumulated (call graph.zero_grad() between
// steps); returns the gradients of the graph inputs (undefined where none flows, e.g. ids).
std::vector<Tensor> backward(Graph& graph, const Tape& tape, std::span<const Tensor> output_grads);

}  // namespace shrink::nn
