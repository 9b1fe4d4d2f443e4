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

// Two branches joined by a channel Concat, global average pooling, then the classifier: the
// patterns the int8 region handles besides convolutions and adds.
inline nn::Graph concat_pool_cnn(uint64_t seed) {
  nn::GraphBuilder b(seed);
  int x = b.input("image", Shape{-1, 3, 10, 10});
  x = b.op("stem.relu", "ReLU", {b.conv2d("stem.conv", x, 3, 8, 3, 1, 1, 1, true)});
  const int left = b.op("left.relu", "ReLU", {b.conv2d("left.conv", x, 8, 6, 3, 1, 1, 1, true)});
  const int right = b.op("right.relu", "ReLU", {b.conv2d("right.conv", x, 8, 4, 1, 1, 0, 1, true)});
  x = b.op("join", "Concat", {left, right}, {{"axis", 1}});
  x = b.op("mix.relu", "ReLU", {b.conv2d("mix.conv", x, 10, 12, 3, 2, 1, 1, true)});
  x = b.op("pool", "AdaptiveAvgPool2d", {x}, {{"output_size", 2}});
  x = b.op("flatten", "Flatten", {x});
  b.output(b.linear("head", x, 12 * 2 * 2, 5));
  return b.take();
}

}  // namespace shrink::testing
