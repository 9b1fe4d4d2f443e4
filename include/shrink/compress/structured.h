// Structured pruning: whole channels (Conv2d filters, Linear neurons) are removed, not zeroed.
// Values whose channels must stay in step — a layer's output, the BatchNorm and activations after
// it, and every input of a residual Add — form one channel group (union-find over the graph);
// a group is pruned as a unit by the summed L1 or L2 norms of its producers' weight rows, and every
// consumer is rewritten: the next Conv2d's input channels, a Linear's input features (after a
// Flatten, whole spatial blocks), BatchNorm parameters and statistics. Transformer values
// (batch, sequence, features) qualify when only Linear and element-wise ops touch them: the MLP
// neurons of a Llama block (gate and up rows, SiLU, Mul, down's columns); the residual stream
// (read by norms) and attention's projections (read by Attention) are left alone with the reason.
#pragma once
#include <string>
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::compress {

struct StructuredConfig {
  double fraction = 0.5;       // of each group's channels to remove, in [0, 1)
  bool l1 = false;             // rank by L1 instead of L2 norms
  std::vector<std::string> exclude;  // producer-node globs whose groups are left alone
};

struct ChannelGroupReport {
  std::vector<std::string> producers;  // Conv2d / Linear nodes whose outputs are the channels
  int64_t before = 0, after = 0;
  std::vector<int64_t> removed;  // channel indices (of the original numbering)
  bool pruned = false;
  std::string reason;  // why a group was left alone
};

// Rewrites the graph (validated; unchanged on error). UsageError for a fraction outside [0, 1).
std::vector<ChannelGroupReport> prune_channels(nn::Graph& graph, const StructuredConfig& config);

}  // namespace shrink::compress
