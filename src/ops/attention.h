// Attention with a key/value cache, for decoding one token (or one prompt) at a time: the
// Attention op's arithmetic with queries at positions cache.length onwards.
#pragma once
#include <cstdint>
#include <type_traits>
#include <vector>

#include "shrink/nn/graph.h"

namespace shrink::nn::ops {

// Keys (already rotated) and values of the positions seen so far, head by head: (kv_heads,
// capacity, head_dim), so that single-token attention streams each head's cache contiguously
// (the interleaved (length, kv_heads * head_dim) rows it replaced were read 30% slower).
// Entries in f16 (`half`, the default, as llama.cpp's cache: half the bytes a long context reads
// per token) or f32; one of the two pairs of vectors is used. f16 keys are stored in attend_f16kv's
// blocks of kKeyBlock positions (registry.h): head h's block b at keys16 + (h * capacity + b *
// kKeyBlock) * dim; the capacity is a whole number of blocks.
struct KvCache {
  bool half = true;  // fixed before the first append
  std::vector<float> keys, values;
  std::vector<uint16_t> keys16, values16;
  int64_t length = 0, capacity = 0, kv_heads = 0, dim = 0;
  int64_t reserved = 0;  // positions the first growth makes room for at once (0: none)
  int64_t warm = 0;      // positions prefetch() asked for, until the next cached_attention_row

  // Appends t positions of k and v rows (t, kv_heads * dim), growing the capacity by half (and at
  // least to `reserved`).
  void append(const float* k, const float* v, int64_t t);
  // Asks the caches for the keys and values of the first `positions` positions of every kv head
  // (software prefetches; the new position's block included when it is one of them) where
  // there are at most kWarmPositions; the next cached_attention_row over them then runs on one
  // thread (see there). Else nothing.
  static constexpr int64_t kWarmPositions = 128;
  void prefetch(int64_t positions);
  template <class T>
  const T* head_keys(int64_t h) const {
    return entries<T>(keys, keys16) + h * capacity * dim;
  }
  template <class T>
  const T* head_values(int64_t h) const {
    return entries<T>(values, values16) + h * capacity * dim;
  }

 private:
  template <class T>
  static const T* entries(const std::vector<float>& f32, const std::vector<uint16_t>& f16) {
    if constexpr (std::is_same_v<T, float>) return f32.data();
    else return f16.data();
  }
};

// An Attention node's shape: batch n, length t, heads, kv heads, head dim, rotary embedding.
struct AttentionShape {
  int64_t n, t, heads, kv_heads, dim;
  bool rope;
  double theta;
  bool causal = true;
};
AttentionShape attention_shape(const Node& node, const Shape& q);

// q (1, T, H*d), k and v (1, T, KV*d) of an Attention node -> (1, T, H*d); appends to the cache.
Tensor cached_attention(const Node& node, const Tensor& q, const Tensor& k, const Tensor& v, KvCache& cache);

// One position through cached_attention with raw rows: q (H*d), k and v (KV*d) -> y (H*d), the
// same values; the shape from cached_attention_row_shape (node, q's width), made once.
AttentionShape cached_attention_row_shape(const Node& node, int64_t q_width);
void cached_attention_row(const Node& node, const AttentionShape& s, const float* q, const float* k, const float* v,
                          KvCache& cache, float* y);

}  // namespace shrink::nn::ops
