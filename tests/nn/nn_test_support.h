// Helpers for the graph and op tests: one-node graphs with random parameters, random inputs, and
// a finite-difference gradient check of every f32 input and trainable parameter.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "shrink/nn/execute.h"
#include "shrink/nn/graph.h"

namespace shrink::testing {

struct ParamSpec {
  std::string name;
  Shape shape;
  bool trainable = true;
  float low = -1.f, high = 1.f;
};

inline Tensor random_tensor(const Shape& shape, Rng& rng, float low = -1.f, float high = 1.f) {
  Tensor t = Tensor::empty(shape, DType::f32);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = rng.uniform(low, high);
  return t;
}

inline nn::Node make_node(const std::string& kind, nlohmann::json attrs,
                          const std::vector<ParamSpec>& params, uint64_t seed = 1) {
  Rng rng(seed);
  nn::Node node;
  node.name = "layer";
  node.kind = kind;
  node.attrs = std::move(attrs);
  for (const ParamSpec& p : params)
    node.params.push_back({p.name, random_tensor(p.shape, rng, p.low, p.high), {}, p.trainable});
  return node;
}

inline nn::Graph single_node_graph(nn::Node node, const std::vector<nn::ValueInfo>& inputs) {
  nn::Graph graph;
  std::vector<int> ids;
  for (size_t i = 0; i < inputs.size(); ++i)
    ids.push_back(graph.add_input("x" + std::to_string(i), inputs[i].shape, inputs[i].dtype));
  node.inputs = ids;
  for (int out : graph.add_node(std::move(node))) graph.mark_output(out);
  return graph;
}

// Loss = sum over outputs of <output, weight>, computed in double.
struct GradCheckOptions {
  bool training = true;
  double step = 1e-2;
  double tolerance = 1e-2;  // relative, with an absolute floor of the same size
  int max_checks_per_tensor = 40;
};

inline double weighted_loss(nn::Graph& graph, const std::vector<Tensor>& inputs,
                            const std::vector<Tensor>& weights, bool training) {
  Rng rng(99);
  nn::RunOptions options;
  options.training = training;
  options.rng = &rng;
  auto outputs = nn::forward(graph, inputs, options);
  double loss = 0;
  for (size_t o = 0; o < outputs.size(); ++o) {
    Tensor y = outputs[o].contiguous();
    for (int64_t i = 0; i < y.numel(); ++i)
      loss += double(y.data<float>()[i]) * weights[o].data<float>()[i];
  }
  return loss;
}

// Compares analytic gradients with central differences at up to max_checks entries per tensor.
inline void expect_gradients_match(nn::Graph& graph, std::vector<Tensor> inputs,
                                   const GradCheckOptions& options = {}) {
  Rng rng(7);
  nn::Tape tape;
  Rng dropout_rng(99);
  nn::RunOptions run;
  run.training = options.training;
  run.tape = &tape;
  run.rng = &dropout_rng;
  auto outputs = nn::forward(graph, inputs, run);
  std::vector<Tensor> weights;
  for (const Tensor& y : outputs) weights.push_back(random_tensor(y.shape(), rng));
  graph.zero_grad();
  auto input_grads = nn::backward(graph, tape, weights);

  auto check = [&](Tensor& value, const Tensor& grad, const std::string& what) {
    ASSERT_TRUE(grad.defined()) << "no gradient reached " << what;
    Tensor g = grad.contiguous();
    int64_t n = value.numel(), stride = std::max<int64_t>(1, n / options.max_checks_per_tensor);
    for (int64_t i = 0; i < n; i += stride) {
      float* v = value.mutable_data<float>() + i;
      float saved = *v;
      *v = float(saved + options.step);
      double up = weighted_loss(graph, inputs, weights, options.training);
      *v = float(saved - options.step);
      double down = weighted_loss(graph, inputs, weights, options.training);
      *v = saved;
      double numeric = (up - down) / (2 * options.step), analytic = g.data<float>()[i];
      double bound = options.tolerance * std::max({1.0, std::abs(numeric), std::abs(analytic)});
      EXPECT_NEAR(analytic, numeric, bound) << what << " element " << i;
    }
  };
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].dtype() == DType::f32) check(inputs[i], input_grads[i], "input " + std::to_string(i));
  for (auto& [name, param] : graph.named_params(true)) check(param->value, param->grad, name);
}

}  // namespace shrink::testing
