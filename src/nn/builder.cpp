// GraphBuilder: layers with PyTorch's default initialisation.
#include "shrink/nn/builder.h"

#include <cmath>

namespace shrink::nn {

Tensor GraphBuilder::uniform(const Shape& shape, double bound) {
  Tensor t = Tensor::empty(shape, DType::f32);
  float* d = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = rng_.uniform(float(-bound), float(bound));
  return t;
}

Tensor GraphBuilder::filled(const Shape& shape, float value) {
  Tensor t = Tensor::empty(shape, DType::f32);
  std::fill(t.mutable_data<float>(), t.mutable_data<float>() + t.numel(), value);
  return t;
}

int GraphBuilder::linear(const std::string& name, int x, int64_t in, int64_t out, bool bias) {
  Node node{name, "Linear", {{"in_features", in}, {"out_features", out}}, {x}, {}, {}};
  double bound = 1.0 / std::sqrt(double(in));
  node.params.push_back({"weight", uniform(Shape{out, in}, bound), {}, true});
  if (bias) node.params.push_back({"bias", uniform(Shape{out}, bound), {}, true});
  return graph_.add(std::move(node));
}

int GraphBuilder::conv2d(const std::string& name, int x, int64_t in, int64_t out, int64_t kernel,
                         int64_t stride, int64_t padding, int64_t groups, bool bias) {
  Node node{name,
            "Conv2d",
            {{"in_channels", in},
             {"out_channels", out},
             {"kernel_size", kernel},
             {"stride", stride},
             {"padding", padding},
             {"groups", groups}},
            {x},
            {},
            {}};
  double bound = 1.0 / std::sqrt(double(in / groups * kernel * kernel));
  node.params.push_back({"weight", uniform(Shape{out, in / groups, kernel, kernel}, bound), {}, true});
  if (bias) node.params.push_back({"bias", uniform(Shape{out}, bound), {}, true});
  return graph_.add(std::move(node));
}

int GraphBuilder::batch_norm(const std::string& name, int x, int64_t channels, bool two_d) {
  Node node{name, two_d ? "BatchNorm2d" : "BatchNorm1d", {{"num_features", channels}}, {x}, {}, {}};
  node.params = {{"weight", filled(Shape{channels}, 1.f), {}, true},
                 {"bias", filled(Shape{channels}, 0.f), {}, true},
                 {"running_mean", filled(Shape{channels}, 0.f), {}, false},
                 {"running_var", filled(Shape{channels}, 1.f), {}, false}};
  return graph_.add(std::move(node));
}

int GraphBuilder::layer_norm(const std::string& name, int x, int64_t dim) {
  Node node{name, "LayerNorm", {{"normalized_shape", dim}}, {x}, {}, {}};
  node.params = {{"weight", filled(Shape{dim}, 1.f), {}, true}, {"bias", filled(Shape{dim}, 0.f), {}, true}};
  return graph_.add(std::move(node));
}

int GraphBuilder::rms_norm(const std::string& name, int x, int64_t dim) {
  Node node{name, "RMSNorm", {{"normalized_shape", dim}}, {x}, {}, {}};
  node.params = {{"weight", filled(Shape{dim}, 1.f), {}, true}};
  return graph_.add(std::move(node));
}

int GraphBuilder::embedding(const std::string& name, int ids, int64_t count, int64_t dim) {
  Node node{name, "Embedding", {{"num_embeddings", count}, {"embedding_dim", dim}}, {ids}, {}, {}};
  Tensor w = Tensor::empty(Shape{count, dim}, DType::f32);
  for (int64_t i = 0; i < w.numel(); ++i) w.mutable_data<float>()[i] = rng_.normal();  // PyTorch: N(0, 1)
  node.params = {{"weight", w, {}, true}};
  return graph_.add(std::move(node));
}

int GraphBuilder::op(const std::string& name, const std::string& kind, std::vector<int> inputs,
                     nlohmann::json attrs) {
  return graph_.add(Node{name, kind, std::move(attrs), std::move(inputs), {}, {}});
}

}  // namespace shrink::nn
