// The model: a small dataflow graph. Nodes are ops with attributes and named parameters (dotted
// PyTorch-style names: "features.0.weight"); edges are values (tensors) with a static shape whose
// unknown dimensions (batch, sequence) are -1. Every change re-validates shapes and dtypes.
#pragma once
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shrink/core/tensor.h"

namespace shrink::nn {

// Shape of a value as known before running; -1 marks a dimension fixed only at run time.
struct ValueInfo {
  Shape shape;
  DType dtype = DType::f32;
};

struct Param {
  std::string name;  // local name: "weight", "running_mean"
  Tensor value;
  Tensor grad;             // f32, same shape; defined once a backward pass reached it
  bool trainable = true;   // false for buffers (running statistics)
};

struct Node {
  std::string name;  // "features.0"; unique within the graph
  std::string kind;  // "Linear", "Conv2d", ...
  nlohmann::json attrs = nlohmann::json::object();
  std::vector<int> inputs;   // value ids
  std::vector<int> outputs;  // value ids
  std::vector<Param> params;
  // Derived data an op builds from the params on first use (int8 weights packed for the kernels);
  // not saved. Ops whose params can change (training) must not use it.
  std::shared_ptr<const void> prepared = nullptr;

  Param* find_param(std::string_view local_name);
  const Param* find_param(std::string_view local_name) const;
  Param& param(std::string_view local_name);  // throws UsageError when missing
  const Param& param(std::string_view local_name) const;
  int64_t param_bytes() const;  // of every param's value as stored
};

struct Value {
  std::string name;
  ValueInfo info;
  int producer = -1;  // node index; -1 for graph inputs
};

class Graph {
 public:
  // Building. add_node checks the node against its op's rules at once and returns its outputs.
  int add_input(const std::string& name, const Shape& shape, DType dtype = DType::f32);
  std::vector<int> add_node(Node node);
  int add(Node node);  // add_node for single-output nodes
  void mark_output(int value);
  // Drops `value` from the graph outputs, then every node none of whose outputs is read any more
  // (transitively), so a training-only head goes away with its output. Graph inputs stay.
  void remove_output(int value);
  void set_value_name(int value, const std::string& name);  // checked for clashes by validate()

  const std::vector<Node>& nodes() const { return nodes_; }
  std::vector<Node>& nodes() { return nodes_; }
  const std::vector<Value>& values() const { return values_; }
  const std::vector<int>& inputs() const { return inputs_; }
  const std::vector<int>& outputs() const { return outputs_; }
  int node_index(std::string_view name) const;  // -1 when absent
  Node& node(std::string_view name);            // throws UsageError when absent
  const Node& node(std::string_view name) const;
  std::vector<int> consumers(int value) const;  // node indices reading the value

  // Rewrites; each leaves a valid graph or throws (and leaves the graph as it was).
  // The replacement takes over the node's inputs and outputs (same counts).
  void replace_node(std::string_view name, Node replacement);
  // The new node reads `name`'s first output (its first input) and every former consumer of
  // that output (and the graph outputs) read the new node's output instead.
  void insert_after(std::string_view name, Node node);
  // The new node reads input `input_index` of `name` and `name` reads the new node's output.
  void insert_before(std::string_view name, int input_index, Node node);
  // Removes a single-input, single-output node whose output has its input's shape; consumers
  // read its input instead.
  void remove_node(std::string_view name);
  // Replaces a single-input, single-output node by a chain: the first node reads its input, each
  // next one the previous output, and the last produces its output (value ids kept).
  void replace_with_chain(std::string_view name, std::vector<Node> chain);
  // Replaces a chain of nodes (each the only consumer of the previous one's single output)
  // with one node taking the first one's inputs and producing the last one's output.
  void fuse_chain(const std::vector<std::string>& names, Node fused);

  // Recomputes every value's info in order, checking the op rules, topological order, unique
  // names and graph outputs. Throws UsageError naming the node.
  void validate();

  // Parameters with their dotted names, in node order.
  std::vector<std::pair<std::string, Param*>> named_params(bool trainable_only = false);
  std::vector<std::pair<std::string, const Param*>> named_params(bool trainable_only = false) const;
  int64_t parameter_count() const;  // trainable elements
  void zero_grad();

 private:
  int new_value(const std::string& name);
  void connect(Node& node, int index);
  void drop_unused_values();

  std::vector<Node> nodes_;  // in topological order
  std::vector<Value> values_;
  std::vector<int> inputs_, outputs_;
};

}  // namespace shrink::nn
