// Graph rewrites: replace, insert before/after, remove and fuse. Each one works on the graph in
// place, re-validates, and restores the previous graph when validation fails.
#include <fmt/format.h>

#include <algorithm>

#include "shrink/nn/graph.h"
#include "shrink/nn/op.h"

namespace shrink::nn {
namespace {

// Runs a rewrite; on any error the graph is put back as it was.
template <class Body> void transactional(Graph& graph, Body body) {
  Graph before = graph;
  try {
    body();
    graph.validate();
  } catch (...) {
    graph = std::move(before);
    throw;
  }
}

void rename_reads(std::vector<Node>& nodes, size_t from_node, int old_value, int new_value) {
  for (size_t i = from_node; i < nodes.size(); ++i)
    for (int& id : nodes[i].inputs)
      if (id == old_value) id = new_value;
}

// Values named after the node they came from ("fc1", "lstm:0") follow the node's new name;
// names given on purpose ("logits") stay.
void rename_outputs(std::vector<Value>& values, const std::vector<int>& outputs, const std::string& old_name,
                    const std::string& new_name) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::string suffix = outputs.size() == 1 ? "" : fmt::format(":{}", i);
    Value& v = values[size_t(outputs[i])];
    if (v.name == old_name + suffix) v.name = new_name + suffix;
  }
}

}  // namespace

void Graph::replace_node(std::string_view name, Node replacement) {
  int index = node_index(name);
  if (index < 0) throw UsageError("no node named '" + std::string(name) + "'", "replace_node");
  op_rules(replacement.kind);  // unknown kinds fail before anything changes
  transactional(*this, [&] {
    Node& old = nodes_[size_t(index)];
    replacement.inputs = old.inputs;
    replacement.outputs = old.outputs;
    rename_outputs(values_, old.outputs, old.name, replacement.name);
    old = std::move(replacement);
  });
}

void Graph::insert_after(std::string_view name, Node node) {
  int index = node_index(name);
  if (index < 0) throw UsageError("no node named '" + std::string(name) + "'", "insert_after");
  if (node_index(node.name) >= 0) throw UsageError("duplicate node name '" + node.name + "'");
  op_rules(node.kind);
  transactional(*this, [&] {
    int source = nodes_[size_t(index)].outputs.at(0);
    int fresh = new_value(node.name);
    rename_reads(nodes_, size_t(index) + 1, source, fresh);
    for (int& id : outputs_)
      if (id == source) id = fresh;
    node.inputs.insert(node.inputs.begin(), source);
    node.outputs = {fresh};
    nodes_.insert(nodes_.begin() + index + 1, std::move(node));
  });
}

void Graph::insert_before(std::string_view name, int input_index, Node node) {
  int index = node_index(name);
  if (index < 0) throw UsageError("no node named '" + std::string(name) + "'", "insert_before");
  if (node_index(node.name) >= 0) throw UsageError("duplicate node name '" + node.name + "'");
  Node& target = nodes_[size_t(index)];
  if (input_index < 0 || size_t(input_index) >= target.inputs.size())
    throw UsageError(fmt::format("node has no input {}", input_index), std::string(name));
  op_rules(node.kind);
  transactional(*this, [&] {
    int fresh = new_value(node.name);
    node.inputs.insert(node.inputs.begin(), nodes_[size_t(index)].inputs[size_t(input_index)]);
    node.outputs = {fresh};
    nodes_[size_t(index)].inputs[size_t(input_index)] = fresh;
    nodes_.insert(nodes_.begin() + index, std::move(node));
  });
}

void Graph::remove_node(std::string_view name) {
  int index = node_index(name);
  if (index < 0) throw UsageError("no node named '" + std::string(name) + "'", "remove_node");
  const Node& target = nodes_[size_t(index)];
  if (target.inputs.size() != 1 || target.outputs.size() != 1)
    throw UsageError("only single-input, single-output nodes can be removed", std::string(name));
  const ValueInfo& in = values_[size_t(target.inputs[0])].info;
  const ValueInfo& out = values_[size_t(target.outputs[0])].info;
  if (in.shape != out.shape || in.dtype != out.dtype)
    throw UsageError(fmt::format("removing it would change shape {} into {}", out.shape.to_string(),
                                 in.shape.to_string()),
                     std::string(name), "replace the node instead");
  transactional(*this, [&] {
    int source = nodes_[size_t(index)].inputs[0], gone = nodes_[size_t(index)].outputs[0];
    rename_reads(nodes_, size_t(index) + 1, gone, source);
    for (int& id : outputs_)
      if (id == gone) id = source;
    nodes_.erase(nodes_.begin() + index);
  });
  drop_unused_values();
}

void Graph::remove_output(int value) {
  auto found = std::find(outputs_.begin(), outputs_.end(), value);
  if (found == outputs_.end()) throw UsageError(fmt::format("value {} is not a graph output", value), "remove_output");
  if (outputs_.size() == 1) throw UsageError("a graph keeps at least one output", "remove_output");
  transactional(*this, [&] {
    outputs_.erase(found);
    std::vector<int> readers(values_.size(), 0);
    for (int id : outputs_) ++readers[size_t(id)];
    for (const Node& n : nodes_)
      for (int id : n.inputs) ++readers[size_t(id)];
    // Walking backwards, a node whose outputs nobody reads is dead and releases its inputs.
    for (size_t i = nodes_.size(); i-- > 0;) {
      bool read = false;
      for (int id : nodes_[i].outputs) read = read || readers[size_t(id)] > 0;
      if (read) continue;
      for (int id : nodes_[i].inputs) --readers[size_t(id)];
      nodes_.erase(nodes_.begin() + std::ptrdiff_t(i));
    }
  });
  drop_unused_values();
}

void Graph::replace_with_chain(std::string_view name, std::vector<Node> chain) {
  int index = node_index(name);
  if (index < 0) throw UsageError("no node named '" + std::string(name) + "'", "replace_with_chain");
  if (chain.empty()) throw UsageError("an empty chain", std::string(name));
  const Node& target = nodes_[size_t(index)];
  if (target.inputs.size() != 1 || target.outputs.size() != 1)
    throw UsageError("only single-input, single-output nodes can become a chain", std::string(name));
  for (const Node& n : chain) op_rules(n.kind);
  transactional(*this, [&] {
    int input = nodes_[size_t(index)].inputs[0], output = nodes_[size_t(index)].outputs[0];
    std::string old_name = nodes_[size_t(index)].name;
    nodes_.erase(nodes_.begin() + index);
    for (size_t i = 0; i < chain.size(); ++i) {
      Node& n = chain[i];
      n.inputs = {input};
      n.outputs = {i + 1 == chain.size() ? output : new_value(n.name)};
      input = n.outputs[0];
    }
    rename_outputs(values_, {output}, old_name, chain.back().name);
    nodes_.insert(nodes_.begin() + index, std::make_move_iterator(chain.begin()), std::make_move_iterator(chain.end()));
  });
}

void Graph::fuse_chain(const std::vector<std::string>& names, Node fused) {
  if (names.empty()) throw UsageError("fuse_chain needs at least one node");
  std::vector<int> indices;
  for (const std::string& n : names) {
    int index = node_index(n);
    if (index < 0) throw UsageError("no node named '" + n + "'", "fuse_chain");
    indices.push_back(index);
  }
  for (size_t i = 1; i < indices.size(); ++i) {
    const Node& previous = nodes_[size_t(indices[i - 1])];
    const Node& current = nodes_[size_t(indices[i])];
    if (previous.outputs.size() != 1 || current.inputs.empty() ||
        current.inputs[0] != previous.outputs[0])
      throw UsageError(fmt::format("'{}' does not read '{}'", current.name, previous.name),
                       "fuse_chain");
    if (consumers(previous.outputs[0]).size() != 1 ||
        std::count(outputs_.begin(), outputs_.end(), previous.outputs[0]))
      throw UsageError(fmt::format("the output of '{}' is also used elsewhere", previous.name),
                       "fuse_chain", "only private intermediate values can be fused away");
  }
  if (node_index(fused.name) >= 0 && fused.name != names.front())
    throw UsageError("duplicate node name '" + fused.name + "'", "fuse_chain");
  op_rules(fused.kind);
  transactional(*this, [&] {
    fused.inputs = nodes_[size_t(indices.front())].inputs;
    fused.outputs = nodes_[size_t(indices.back())].outputs;
    rename_outputs(values_, fused.outputs, nodes_[size_t(indices.back())].name, fused.name);
    nodes_[size_t(indices.back())] = std::move(fused);
    std::vector<int> doomed(indices.begin(), indices.end() - 1);
    std::sort(doomed.rbegin(), doomed.rend());
    for (int index : doomed) nodes_.erase(nodes_.begin() + index);
  });
  drop_unused_values();
}

// Values nobody produces or reads any more are dropped and ids renumbered.
void Graph::drop_unused_values() {
  std::vector<bool> used(values_.size(), false);
  for (int id : inputs_) used[size_t(id)] = true;
  for (const Node& n : nodes_) {
    for (int id : n.inputs) used[size_t(id)] = true;
    for (int id : n.outputs) used[size_t(id)] = true;
  }
  std::vector<int> remap(values_.size(), -1);
  std::vector<Value> kept;
  for (size_t i = 0; i < values_.size(); ++i)
    if (used[i]) {
      remap[i] = int(kept.size());
      kept.push_back(std::move(values_[i]));
    }
  values_ = std::move(kept);
  for (int& id : inputs_) id = remap[size_t(id)];
  for (int& id : outputs_) id = remap[size_t(id)];
  for (Node& n : nodes_) {
    for (int& id : n.inputs) id = remap[size_t(id)];
    for (int& id : n.outputs) id = remap[size_t(id)];
  }
  validate();
}

}  // namespace shrink::nn
