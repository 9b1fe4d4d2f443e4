// Autoregressive decoding of a causal language-model graph (input tokens (1, T) i64, output
// logits (1, T, V)) with a key/value cache: every node runs as in forward(), except Attention
// nodes, which attend over the cached keys and values of all earlier positions and append the
// new ones. A prompt is fed in one call (prefill), then one token per call (decode).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shrink/core/dtype.h"
#include "shrink/core/rng.h"
#include "shrink/nn/graph.h"

namespace shrink::nn {

struct DecoderOptions {
  // The key/value cache's entries: DType::f16 (half the memory, and half the bytes a long context
  // reads per token; llama.cpp's default) or DType::f32 (exactly the forward pass's keys and values).
  DType kv_cache = DType::f16;
};

class Decoder {
 public:
  explicit Decoder(Graph& graph, DecoderOptions options = {});
  ~Decoder();
  // Runs the tokens at the next positions; returns the logits of the last of them.
  std::vector<float> feed(std::span<const int32_t> tokens);
  // As feed, without the copy: a view of the decoder's own output row, valid until the next
  // feed, feed_view or reset. A decode loop that samples from it does not allocate and fill a
  // row of the vocabulary's size a token (SmolLM2: 196 KB, half of it written by the other core;
  // ~25 us a token on the 2-core Zen 4 host, ~0.7% of a token).
  std::span<const float> feed_view(std::span<const int32_t> tokens);
  int64_t length() const { return length_; }
  // Bytes the key/value cache holds now (its capacity: it grows by half when full).
  int64_t kv_cache_bytes() const;
  // Room for this many positions from the first token on, so that decoding up to there never
  // regrows the cache (each growth allocates, zeroes and copies every layer's keys and values in
  // the middle of a token). Kept across reset().
  void reserve(int64_t positions);
  void reset();
  // How many of a single token's steps run fused with the node after them (an Add with the
  // RMSNorm of its sum, a SiLU with the Mul by the up projection); SHRINK_DECODE_FUSE=0 when the
  // decoder is made: none. The results are bit for bit the same either way.
  int64_t fused_steps() const;
  // How many of a decoded token's steps run a planned form (an Int4Linear set, an attention, a
  // fused step) rather than their op's forward; 0 before the first decoded token, which plans the
  // rest (nn/token_plan.h), and with SHRINK_DECODE_PLAN=0 when the decoder is made. The results
  // are bit for bit the same either way.
  int64_t planned_steps() const;
  // Time spent per node kind (Linear, Attention, RMSNorm, ...) while profiling is on; off by default.
  struct KindTime {
    int64_t calls = 0;
    double seconds = 0;
  };
  void set_profiling(bool on) { profiling_ = on; }
  const std::map<std::string, KindTime>& profile() const { return profile_; }

 private:
  struct Caches;
  // The tokens (ids (1, T)) through the graph node by node (forward_segment with the decoder's
  // own steps); the first decoded token also makes the plan of the next ones. The output value.
  Tensor run_node_by_node(const Tensor& ids, bool& head_ran_on_last_row);
  Graph& graph_;
  std::unique_ptr<Caches> caches_;
  DecoderOptions options_;
  int64_t length_ = 0;
  int64_t reserved_ = 0;
  bool profiling_ = false;
  std::map<std::string, KindTime> profile_;
  Tensor logits_;  // the last feed's output, kept for feed_view's span
};

// Bytes of parameters one decoded token reads: every node's, except the lookups (Embedding,
// PositionEmbedding) that read one row. A tied output layer counts once, as the head.
int64_t weight_bytes_per_token(const Graph& graph);

struct SamplingOptions {
  double temperature = 0;  // 0: greedy (arg max)
  int64_t top_k = 0;       // 0: no limit
  double top_p = 1.0;      // nucleus: the smallest set of tokens with this much probability
};
// Picks the next token from logits (UsageError for bad options).
int32_t sample_token(std::span<const float> logits, const SamplingOptions& options, Rng& rng);

}  // namespace shrink::nn
