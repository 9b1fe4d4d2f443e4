// Attention with a key/value cache, for decoding one token (or one prompt) at a time: the
// Attention op's arithmetic with queries at positions cache.length onwards.
#pragma once
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::nn::ops {

// Keys (already rotated) and values of the positions seen so far, head by head: (kv_heads,
// capacity, head_dim), so that single-token attention streams each head's cache contiguously
// (the interleaved (length, kv_heads * head_dim) rows it replaced were read 30% slower).
struct KvCache {
  std::vector<float> keys, values;
  int64_t length = 0, capacity = 0, kv_heads = 0, dim = 0;

  // Appends t positions of k and v rows (t, kv_heads * dim), growing the capacity by half.
  void append(const float* k, const float* v, int64_t t);
  const float* head_keys(int64_t h) const { return keys.data() + h * capacity * dim; }
  const float* head_values(int64_t h) const { return values.data() + h * capacity * dim; }
};

// q (1, T, H*d), k and v (1, T, KV*d) of an Attention node -> (1, T, H*d); appends to the cache.
Tensor cached_attention(const Node& node, const Tensor& q, const Tensor& k, const Tensor& v, KvCache& cache);

}  // namespace shrink::nn::ops
