// Graph building, lookup and validation (the rewrites live in graph_rewrite.cpp).
#include "shrink/nn/graph.h"

#include <fmt/format.h>

#include <cstring>
#include <set>

#include "shrink/nn/op.h"

namespace shrink::nn {

Param* Node::find_param(std::string_view local_name) {
  for (auto& p : params)
    if (p.name == local_name) return &p;
  return nullptr;
}
const Param* Node::find_param(std::string_view local_name) const {
  return const_cast<Node*>(this)->find_param(local_name);
}
Param& Node::param(std::string_view local_name) {
  if (Param* p = find_param(local_name)) return *p;
  throw UsageError(fmt::format("{} node has no parameter '{}'", kind, local_name), name);
}
const Param& Node::param(std::string_view local_name) const {
  return const_cast<Node*>(this)->param(local_name);
}
int64_t Node::param_bytes() const {
  int64_t bytes = 0;
  for (const Param& p : params) bytes += int64_t(p.value.nbytes());
  return bytes;
}

int Graph::new_value(const std::string& name) {
  values_.push_back(Value{name, {}, -1});
  return int(values_.size()) - 1;
}

int Graph::add_input(const std::string& name, const Shape& shape, DType dtype) {
  for (const Value& v : values_)
    if (v.name == name) throw UsageError("duplicate value name '" + name + "'", "graph input");
  int id = new_value(name);
  values_[size_t(id)].info = ValueInfo{shape, dtype};
  inputs_.push_back(id);
  return id;
}

std::vector<int> Graph::add_node(Node node) {
  if (node.name.empty()) throw UsageError("a node needs a name", node.kind);
  if (node_index(node.name) >= 0)
    throw UsageError("duplicate node name '" + node.name + "'", node.kind);
  for (int id : node.inputs)
    if (id < 0 || size_t(id) >= values_.size())
      throw UsageError(fmt::format("input value {} does not exist", id), node.name);
  const OpRules& rules = op_rules(node.kind);
  std::vector<ValueInfo> in;
  for (int id : node.inputs) in.push_back(values_[size_t(id)].info);
  std::vector<ValueInfo> out = rules.infer(node, in);
  node.outputs.clear();
  for (size_t i = 0; i < out.size(); ++i) {
    int id = new_value(out.size() == 1 ? node.name : fmt::format("{}:{}", node.name, i));
    values_[size_t(id)].info = out[i];
    values_[size_t(id)].producer = int(nodes_.size());
    node.outputs.push_back(id);
  }
  nodes_.push_back(std::move(node));
  return nodes_.back().outputs;
}

int Graph::add(Node node) {
  std::string name = node.name;
  auto outs = add_node(std::move(node));
  if (outs.size() != 1) throw UsageError("add() expects a single-output node", name);
  return outs[0];
}

void Graph::mark_output(int value) {
  if (value < 0 || size_t(value) >= values_.size())
    throw UsageError(fmt::format("output value {} does not exist", value), "graph");
  outputs_.push_back(value);
}

void Graph::set_value_name(int value, const std::string& name) {
  if (value < 0 || size_t(value) >= values_.size())
    throw UsageError(fmt::format("value {} does not exist", value), "graph");
  values_[size_t(value)].name = name;
}

int Graph::node_index(std::string_view name) const {
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].name == name) return int(i);
  return -1;
}

Node& Graph::node(std::string_view name) {
  int index = node_index(name);
  if (index < 0) throw UsageError("no node named '" + std::string(name) + "'", "graph");
  return nodes_[size_t(index)];
}
const Node& Graph::node(std::string_view name) const { return const_cast<Graph*>(this)->node(name); }

std::vector<int> Graph::consumers(int value) const {
  std::vector<int> result;
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (int id : nodes_[i].inputs)
      if (id == value) {
        result.push_back(int(i));
        break;
      }
  return result;
}

void Graph::validate() {
  std::set<std::string> node_names, value_names;
  std::vector<bool> available(values_.size(), false);
  for (int id : inputs_) {
    available[size_t(id)] = true;
    values_[size_t(id)].producer = -1;
  }
  for (size_t n = 0; n < nodes_.size(); ++n) {
    Node& node = nodes_[n];
    if (!node_names.insert(node.name).second)
      throw UsageError("duplicate node name '" + node.name + "'", "graph");
    std::vector<ValueInfo> in;
    for (int id : node.inputs) {
      if (id < 0 || size_t(id) >= values_.size() || !available[size_t(id)])
        throw UsageError(fmt::format("reads value {} before it is produced", id), node.name);
      in.push_back(values_[size_t(id)].info);
    }
    std::vector<ValueInfo> out;
    try {
      out = op_rules(node.kind).infer(node, in);
    } catch (const Error& e) {
      throw UsageError(e.problem(), node.name + " (" + node.kind + ")", e.hint());
    }
    if (out.size() != node.outputs.size())
      throw UsageError(fmt::format("produces {} outputs, the graph wires {}", out.size(),
                                   node.outputs.size()),
                       node.name);
    for (size_t i = 0; i < out.size(); ++i) {
      int id = node.outputs[i];
      if (available[size_t(id)])
        throw UsageError(fmt::format("value '{}' has two producers", values_[size_t(id)].name),
                         node.name);
      available[size_t(id)] = true;
      values_[size_t(id)].info = out[i];
      values_[size_t(id)].producer = int(n);
    }
  }
  for (int id : outputs_)
    if (!available[size_t(id)])
      throw UsageError(fmt::format("graph output '{}' is never produced", values_[size_t(id)].name),
                       "graph");
  for (size_t i = 0; i < values_.size(); ++i)
    if (available[i] && !value_names.insert(values_[i].name).second)
      throw UsageError("duplicate value name '" + values_[i].name + "'", "graph");
}

std::vector<std::pair<std::string, Param*>> Graph::named_params(bool trainable_only) {
  std::vector<std::pair<std::string, Param*>> result;
  for (Node& node : nodes_)
    for (Param& p : node.params)
      if (!trainable_only || p.trainable) result.emplace_back(node.name + "." + p.name, &p);
  return result;
}

std::vector<std::pair<std::string, const Param*>> Graph::named_params(bool trainable_only) const {
  std::vector<std::pair<std::string, const Param*>> result;
  for (auto& [name, p] : const_cast<Graph*>(this)->named_params(trainable_only))
    result.emplace_back(name, p);
  return result;
}

int64_t Graph::parameter_count() const {
  int64_t total = 0;
  for (auto& [name, p] : named_params(true)) total += p->value.numel();
  return total;
}

void Graph::zero_grad() {
  for (Node& node : nodes_)
    for (Param& p : node.params)
      if (p.grad.defined()) std::memset(p.grad.mutable_raw_data(), 0, p.grad.nbytes());
}

}  // namespace shrink::nn
