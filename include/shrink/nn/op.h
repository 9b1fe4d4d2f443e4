// What a node kind knows: how to check its inputs and infer its outputs, how to run forward, and
// (when differentiable) its backward rule. One table lists every kind (src/ops/op_table.cpp).
#pragma once
#include <span>
#include <string_view>
#include <vector>

#include "shrink/core/rng.h"
#include "shrink/nn/graph.h"

namespace shrink::nn {

struct ForwardContext {
  Node& node;  // BatchNorm updates its running statistics here in training mode
  std::span<const Tensor> inputs;
  std::vector<Tensor>& outputs;  // sized to the node's outputs; the op allocates them
  std::vector<Tensor>& saved;    // whatever backward needs (only when record is set)
  bool training = false;
  bool record = false;
  Rng& rng;
};

struct BackwardContext {
  const Node& node;
  std::span<const Tensor> inputs;
  std::span<const Tensor> outputs;
  std::span<const Tensor> grad_outputs;  // undefined entries mean zero gradient
  const std::vector<Tensor>& saved;
  std::vector<Tensor>& grad_inputs;  // sized to inputs; left undefined where there is none
  std::vector<Tensor>& grad_params;  // sized to node.params; the executor accumulates them
};

struct OpRules {
  std::string_view kind;
  // Checks attributes, parameters and input infos; returns the outputs' infos.
  std::vector<ValueInfo> (*infer)(const Node& node, std::span<const ValueInfo> inputs);
  void (*forward)(ForwardContext& context);
  void (*backward)(BackwardContext& context);  // nullptr: gradients stop here
};

const OpRules& op_rules(std::string_view kind);  // throws UsageError naming the known kinds
std::vector<std::string_view> op_kinds();

}  // namespace shrink::nn
