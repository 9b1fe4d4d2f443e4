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
#include <map>
#include <string>
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::compress {

struct StructuredConfig {
  double fraction = 0.5;       // of each group's channels to remove, in [0, 1)
  bool l1 = false;             // rank by L1 instead of L2 norms
  std::vector<std::string> exclude;  // producer-node globs whose groups are left alone
  // Activation statistics (optional): consumer Linear name -> ||X_j||_2 of each of its input
  // features over calibration data. When every Linear reading a group (for heads: the output
  // projection) has them, channel c is ranked by its contribution to those outputs,
  // sqrt(sum over consumers of ||X_c||^2 ||W[:, c]||^2) -- Wanda's score summed over a column,
  // as Wanda-sp (An et al. 2024, "Fluctuation-based Adaptive Structured Pruning") does -- and a
  // head group by the same sum over its columns, instead of by weight norms alone.
  std::map<std::string, std::vector<float>> input_norms;
};

struct ChannelGroupReport {
  std::vector<std::string> producers;  // Conv2d / Linear nodes whose outputs are the channels
  int64_t before = 0, after = 0;
  std::vector<int64_t> removed;  // channel indices (of the original numbering)
  bool pruned = false;
  bool by_activation = false;  // ranked with StructuredConfig::input_norms
  std::string reason;  // why a group was left alone
};

// Rewrites the graph (validated; unchanged on error). UsageError for a fraction outside [0, 1).
std::vector<ChannelGroupReport> prune_channels(nn::Graph& graph, const StructuredConfig& config);

// Attention heads, removed a key/value group at a time (a kv head and the query heads that share
// it, so grouped-query attention stays regular): in every Attention node whose q, k, v come from
// Linear nodes read by it alone and whose output feeds one Linear (o_proj), the
// floor(fraction * kv_heads) groups with the smallest weight norm (their q, k, v rows and o
// columns together) go: the projections lose those rows and columns and the node its heads.
struct HeadGroupReport {
  std::string attention;
  int64_t kv_heads_before = 0, kv_heads_after = 0, heads_before = 0, heads_after = 0;
  std::vector<int64_t> removed;  // kv-group indices (original numbering)
  bool by_activation = false;    // ranked with StructuredConfig::input_norms
  std::string reason;            // why a node was left alone
};
std::vector<HeadGroupReport> prune_attention_heads(nn::Graph& graph, const StructuredConfig& config);

}  // namespace shrink::compress
