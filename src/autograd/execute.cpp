// Forward execution and reverse-mode autograd over a recorded tape.
#include "shrink/nn/execute.h"

#include <fmt/format.h>

#include <algorithm>

#include "shrink/core/parallel.h"
#include "shrink/nn/op.h"

namespace shrink::nn {
namespace {

void check_inputs(const Graph& graph, std::span<const Tensor> inputs) {
  if (inputs.size() != graph.inputs().size())
    throw UsageError(fmt::format("the graph takes {} input(s), got {}", graph.inputs().size(),
                                 inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = graph.values()[size_t(graph.inputs()[i])];
    const Tensor& t = inputs[i];
    bool ok = t.defined() && t.dtype() == v.info.dtype && t.rank() == v.info.shape.rank();
    for (int d = 0; ok && d < t.rank(); ++d)
      ok = v.info.shape[d] < 0 || v.info.shape[d] == t.shape()[d];
    if (!ok)
      throw UsageError(fmt::format("input '{}' must be {} {}, got {} {}", v.name,
                                   dtype_name(v.info.dtype), v.info.shape.to_string(),
                                   t.defined() ? dtype_name(t.dtype()) : "nothing",
                                   t.defined() ? t.shape().to_string() : ""));
  }
}

// a + b into a fresh tensor (gradients may be shared between values, so never in place).
Tensor sum(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    throw UsageError(fmt::format("gradient shapes {} and {} disagree", a.shape().to_string(),
                                 b.shape().to_string()));
  Tensor ac = a.contiguous(), bc = b.contiguous(), out = Tensor::empty(a.shape(), DType::f32);
  const float *x = ac.data<float>(), *y = bc.data<float>();
  float* z = out.mutable_data<float>();
  parallel_for(0, out.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) z[i] = x[i] + y[i];
  });
  return out;
}

void accumulate_into(Tensor& target, const Tensor& grad) {
  if (!target.defined()) {
    target = Tensor::empty(grad.shape(), DType::f32);
  }
  if (target.shape() != grad.shape())
    throw UsageError(fmt::format("parameter gradient shape {} does not match {}",
                                 grad.shape().to_string(), target.shape().to_string()));
  Tensor g = grad.contiguous();
  float* t = target.mutable_data<float>();
  const float* s = g.data<float>();
  for (int64_t i = 0; i < g.numel(); ++i) t[i] += s[i];
}

// Node n's inputs for its op, into `in`: moved out of `values` where n is their last reader (and
// reads them no more further on in its list) unless the values are kept, copied otherwise. A node
// runs in about a microsecond at decode sizes, and the copies (when shapes and strides were heap
// vectors, two allocations each) were a visible part of it.
void gather_inputs(const Node& node, int n, std::vector<Tensor>& values, const std::vector<int>& last_use, bool keep,
                   std::vector<Tensor>& in) {
  in.clear();
  for (auto it = node.inputs.begin(); it != node.inputs.end(); ++it) {
    Tensor& value = values[size_t(*it)];
    const bool last = !keep && last_use[size_t(*it)] == n && std::find(it + 1, node.inputs.end(), *it) == node.inputs.end();
    if (last) in.push_back(std::move(value));
    else in.push_back(value);
  }
}

// Node n's outputs into `values` (moved: the op's vector is reused for the next node).
void store_outputs(const Node& node, std::vector<Tensor>& out, std::vector<Tensor>& values) {
  for (size_t i = 0; i < out.size(); ++i) values[size_t(node.outputs[i])] = std::move(out[i]);
}

}  // namespace

std::vector<Tensor> forward(Graph& graph, std::span<const Tensor> inputs, const RunOptions& options) {
  check_inputs(graph, inputs);
  const auto& nodes = graph.nodes();
  std::vector<Tensor> values(graph.values().size());
  for (size_t i = 0; i < inputs.size(); ++i) values[size_t(graph.inputs()[i])] = inputs[i];
  // Without a tape a value is released after its last reader.
  std::vector<int> last_use(values.size(), -1);
  for (size_t n = 0; n < nodes.size(); ++n)
    for (int id : nodes[n].inputs) last_use[size_t(id)] = int(n);
  for (int id : graph.outputs()) last_use[size_t(id)] = int(nodes.size());
  Rng fallback_rng(0x5eed);
  Rng& rng = options.rng ? *options.rng : fallback_rng;
  if (options.tape) options.tape->saved.assign(nodes.size(), {});
  std::vector<Tensor> in, out, saved;
  for (size_t n = 0; n < nodes.size(); ++n) {
    Node& node = graph.nodes()[n];
    gather_inputs(node, int(n), values, last_use, options.tape != nullptr, in);
    out.assign(node.outputs.size(), Tensor());
    saved.clear();
    ForwardContext context{node, in, out, saved, options.training, options.tape != nullptr, rng};
    op_rules(node.kind).forward(context);
    if (options.after_node) options.after_node(node, out);
    store_outputs(node, out, values);
    if (options.tape) options.tape->saved[n] = std::move(saved);
    else
      for (int id : node.inputs)
        if (last_use[size_t(id)] == int(n)) values[size_t(id)] = Tensor();
  }
  std::vector<Tensor> result;
  for (int id : graph.outputs()) result.push_back(values[size_t(id)]);
  if (options.tape) options.tape->values = std::move(values);
  return result;
}

std::vector<Tensor> forward_segment(Graph& graph, size_t first, size_t last,
                                    const std::vector<std::pair<int, Tensor>>& given, std::span<const int> wanted,
                                    const RunOptions& options) {
  if (first > last || last > graph.nodes().size()) throw UsageError("forward_segment: node range out of bounds");
  if (options.tape || options.training) throw UsageError("forward_segment runs in eval mode without a tape");
  std::vector<Tensor> values(graph.values().size());
  for (const auto& [id, t] : given) {
    if (id < 0 || size_t(id) >= values.size()) throw UsageError("forward_segment: unknown value id");
    values[size_t(id)] = t;
  }
  std::vector<int> last_use(values.size(), -1);
  for (size_t n = first; n < last; ++n)
    for (int id : graph.nodes()[n].inputs) last_use[size_t(id)] = int(n);
  for (int id : wanted) {
    if (id < 0 || size_t(id) >= values.size()) throw UsageError("forward_segment: unknown wanted value");
    last_use[size_t(id)] = int(last);
  }
  Rng rng(0x5eed);
  std::vector<Tensor> in, out, saved;
  for (size_t n = first; n < last; ++n) {
    Node& node = graph.nodes()[n];
    for (int id : node.inputs)
      if (!values[size_t(id)].defined())
        throw UsageError("forward_segment: '" + graph.values()[size_t(id)].name + "' is read by '" + node.name +
                         "' but neither given nor computed in the range");
    gather_inputs(node, int(n), values, last_use, false, in);
    out.assign(node.outputs.size(), Tensor());
    saved.clear();
    if (!options.replace_forward || !options.replace_forward(node, in, out)) {
      ForwardContext context{node, in, out, saved, false, false, rng};
      op_rules(node.kind).forward(context);
    }
    if (options.after_node) options.after_node(node, out);
    store_outputs(node, out, values);
    for (int id : node.inputs)
      if (last_use[size_t(id)] == int(n)) values[size_t(id)] = Tensor();
  }
  std::vector<Tensor> result;
  for (int id : wanted) result.push_back(values[size_t(id)]);
  return result;
}

std::vector<Tensor> backward(Graph& graph, const Tape& tape, std::span<const Tensor> output_grads) {
  if (output_grads.size() != graph.outputs().size())
    throw UsageError(fmt::format("backward needs {} output gradient(s), got {}",
                                 graph.outputs().size(), output_grads.size()));
  if (tape.values.size() != graph.values().size() || tape.saved.size() != graph.nodes().size())
    throw UsageError("the tape was not recorded from this graph");
  std::vector<Tensor> grads(graph.values().size());
  for (size_t i = 0; i < output_grads.size(); ++i) {
    Tensor& g = grads[size_t(graph.outputs()[i])];
    g = g.defined() ? sum(g, output_grads[i]) : output_grads[i];
  }
  for (size_t n = graph.nodes().size(); n-- > 0;) {
    Node& node = graph.nodes()[n];
    std::vector<Tensor> in, out, grad_out, grad_in(node.inputs.size()), grad_params(node.params.size());
    bool any = false;
    for (int id : node.outputs) {
      out.push_back(tape.values[size_t(id)]);
      grad_out.push_back(grads[size_t(id)]);
      any = any || grads[size_t(id)].defined();
    }
    const OpRules& rules = op_rules(node.kind);
    if (!any || !rules.backward) continue;
    for (int id : node.inputs) in.push_back(tape.values[size_t(id)]);
    BackwardContext context{node, in, out, grad_out, tape.saved[n], grad_in, grad_params};
    rules.backward(context);
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (!grad_in[i].defined()) continue;
      Tensor& g = grads[size_t(node.inputs[i])];
      g = g.defined() ? sum(g, grad_in[i]) : grad_in[i];
    }
    for (size_t i = 0; i < node.params.size(); ++i)
      if (grad_params[i].defined() && node.params[i].trainable)
        accumulate_into(node.params[i].grad, grad_params[i]);
    for (int id : node.outputs) grads[size_t(id)] = Tensor();  // no longer needed
  }
  std::vector<Tensor> input_grads;
  for (int id : graph.inputs()) input_grads.push_back(grads[size_t(id)]);
  return input_grads;
}

}  // namespace shrink::nn
