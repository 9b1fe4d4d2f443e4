// Attention with a key/value cache, for decoding one token (or one prompt) at a time: the
// Attention op's arithmetic with queries at positions cache.length onwards.
#pragma once
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::nn::ops {

struct KvCache {
  std::vector<float> keys, values;  // (length, kv_heads * head_dim), keys already rotated
  int64_t length = 0, width = 0;
};

// q (1, T, H*d), k and v (1, T, KV*d) of an Attention node -> (1, T, H*d); appends to the cache.
Tensor cached_attention(const Node& node, const Tensor& q, const Tensor& k, const Tensor& v, KvCache& cache);

}  // namespace shrink::nn::ops
