// Reference models that the compression techniques are measured on: an MLP and a Conv-BN-ReLU
// CNN with residual blocks for Fashion-MNIST (input "image" (N, 1, 28, 28), output "logits"), and
// for the Austen text an LSTM language model and a small Llama-style GPT (input "tokens" (N, T)
// i64, output "logits" (N, T, vocabulary)).
#pragma once
#include <string>
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::nn {

struct ArchitectureInfo {
  std::string name;
  std::string data;  // the dataset it is built for: "fashion-mnist" or "austen"
  std::string description;
};

struct ZooOptions {
  uint64_t seed = 0;
  int64_t classes = 10;
  int64_t width = 0;       // 0: the architecture's default
  int64_t vocabulary = 0;  // language models: rows of the embedding and the output layer
  int64_t layers = 0;      // 0: the architecture's default
};

const std::vector<ArchitectureInfo>& architectures();
const ArchitectureInfo& architecture(const std::string& name);  // UsageError listing the names
Graph build_architecture(const std::string& name, const ZooOptions& options = {});

}  // namespace shrink::nn
