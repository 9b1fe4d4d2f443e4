// Small graphs shared by the quantization tests: a CNN with every pattern the static converter
// fuses (Conv+BN+ReLU, grouped conv, residual Add+ReLU, MaxPool, Flatten, Linear+ReLU, Dropout).
#pragma once
#include "nn/nn_test_support.h"
#include "shrink/nn/builder.h"

namespace shrink::testing {

// Random BN statistics so that folding has something to do.
inline void randomize_batch_norms(nn::Graph& graph, Rng& rng) {
  for (nn::Node& node : graph.nodes())
    if (node.kind.starts_with("BatchNorm"))
      for (nn::Param& p : node.params)
        for (int64_t i = 0; i < p.value.numel(); ++i)
          p.value.mutable_data<float>()[i] = p.name == "running_var" ? rng.uniform(0.5f, 2.f) : rng.uniform(-0.5f, 1.5f);
}

inline nn::Graph small_cnn(uint64_t seed) {
  nn::GraphBuilder b(seed);
  int x = b.input("image", Shape{-1, 2, 12, 12});
  x = b.op("stem.relu", "ReLU", {b.batch_norm("stem.bn", b.conv2d("stem.conv", x, 2, 8, 3, 1, 1, 1, false), 8)});
  x = b.op("pool", "MaxPool2d", {x}, {{"kernel_size", 2}});
  int y = b.op("block.relu1", "ReLU", {b.batch_norm("block.bn1", b.conv2d("block.conv1", x, 8, 8, 3, 1, 1, 2, false), 8)});
  y = b.batch_norm("block.bn2", b.conv2d("block.conv2", y, 8, 8, 3, 1, 1, 1, false), 8);
  x = b.op("block.relu", "ReLU", {b.op("block.add", "Add", {y, x})});
  x = b.op("flatten", "Flatten", {x});
  x = b.op("drop", "Dropout", {b.op("fc.relu", "ReLU", {b.linear("fc", x, 8 * 6 * 6, 16)})}, {{"p", 0.2}});
  b.output(b.linear("head", x, 16, 5));
  return b.take();
}

}  // namespace shrink::testing
