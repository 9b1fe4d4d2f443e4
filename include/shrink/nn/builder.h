// A builder for graphs in the layer vocabulary of PyTorch: each call adds a node with
// initialised parameters (PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights
// and biases; ones/zeros for norms) and returns the new value id.
#pragma once
#include <string>
#include <vector>

#include "shrink/core/rng.h"
#include "shrink/nn/graph.h"

namespace shrink::nn {

class GraphBuilder {
 public:
  explicit GraphBuilder(uint64_t seed) : rng_(seed) {}

  int input(const std::string& name, const Shape& shape, DType dtype = DType::f32) {
    return graph_.add_input(name, shape, dtype);
  }
  int linear(const std::string& name, int x, int64_t in, int64_t out, bool bias = true);
  int conv2d(const std::string& name, int x, int64_t in, int64_t out, int64_t kernel,
             int64_t stride = 1, int64_t padding = 0, int64_t groups = 1, bool bias = true);
  int batch_norm(const std::string& name, int x, int64_t channels, bool two_d = true);
  int layer_norm(const std::string& name, int x, int64_t dim);
  int rms_norm(const std::string& name, int x, int64_t dim);
  int embedding(const std::string& name, int ids, int64_t count, int64_t dim);
  // Parameter-free nodes: ReLU, Flatten, Add, MaxPool2d (with attrs), ...
  int op(const std::string& name, const std::string& kind, std::vector<int> inputs,
         nlohmann::json attrs = nlohmann::json::object());

  void output(int value) { graph_.mark_output(value); }
  Graph& graph() { return graph_; }
  Graph take() { return std::move(graph_); }
  Rng& rng() { return rng_; }

 private:
  Tensor uniform(const Shape& shape, double bound);
  Tensor filled(const Shape& shape, float value);
  Graph graph_;
  Rng rng_;
};

}  // namespace shrink::nn
