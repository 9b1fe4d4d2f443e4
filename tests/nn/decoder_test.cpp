// Decoding with a key/value cache gives the logits of a full forward pass, whether the prompt
// is fed at once or token by token; sampling respects its options.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <cstdlib>

#include "compress/llm_test_models.h"
#include "ops/linear.h"
#include "shrink/compress/llm_quantize.h"
#include "shrink/core/error.h"
#include "shrink/core/half.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/io/llm_import.h"
#include "shrink/nn/decoder.h"
#include "shrink/nn/execute.h"

namespace shrink::nn {
namespace {

Graph tiny_llama(int64_t dim = 32, int64_t heads = 4) {
  io::LmConfig c;
  c.vocabulary = 50, c.dim = dim, c.layers = 2, c.heads = heads, c.kv_heads = 2, c.hidden = 48, c.rope_theta = 500;
  Rng rng(11);
  return io::build_llama(c, [&](const std::string& name, const Shape& shape) {
    Tensor t = Tensor::uninitialized(shape, DType::f32);
    bool norm = name.find("norm") != std::string::npos;
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = norm ? 1.f : 0.3f * rng.normal();
    return t;
  });
}

// An Int4Linear node of random nibbles, f16 scales and mins.
Node random_int4_linear(const std::string& name, int64_t n, int64_t k, int64_t group, Rng& rng) {
  Tensor nibbles = Tensor::uninitialized(Shape{n, k / 2}, DType::u8);
  Tensor scales = Tensor::uninitialized(Shape{n, k / group}, DType::f16);
  Tensor mins = Tensor::uninitialized(Shape{n, k / group}, DType::f16);
  for (int64_t i = 0; i < nibbles.numel(); ++i) nibbles.mutable_data<uint8_t>()[i] = uint8_t(rng.next_u32());
  for (int64_t i = 0; i < scales.numel(); ++i) {
    static_cast<uint16_t*>(scales.mutable_raw_data())[i] = f32_to_f16(0.01f + 0.01f * rng.uniform());
    static_cast<uint16_t*>(mins.mutable_raw_data())[i] = f32_to_f16(-0.08f * rng.uniform());
  }
  Node node{name, "Int4Linear", {{"out_features", n}, {"in_features", k}, {"group_size", group}}, {}, {}, {}};
  node.params = {{"nibbles", nibbles, {}, false}, {"scales", scales, {}, false}, {"mins", mins, {}, false}};
  return node;
}

// A set of layers that share their input splits its 4-row steps between the threads, the shares
// moving with the threads' measured speeds: every row comes out bit for bit as when its layer
// runs alone on one thread, however the shares fall, also for layers whose row count is not a
// multiple of 4 (each share starts a layer at a whole step).
TEST(Int4Sets, RowsComeOutTheSameHoweverTheThreadsShareThem) {
  Rng rng(5);
  std::vector<Node> layers;
  const std::pair<const char*, int64_t> shapes[] = {{"q", 6}, {"k", 5}, {"v", 10}, {"o", 4}};
  for (const auto& [name, n] : shapes) layers.push_back(random_int4_linear(name, n, 128, 32, rng));
  Tensor x = Tensor::uninitialized(Shape{1, 128}, DType::f32);
  for (int64_t i = 0; i < 128; ++i) x.mutable_data<float>()[i] = rng.normal();
  set_num_threads(1);
  std::vector<Tensor> alone;
  for (Node& layer : layers) {
    Node* one = &layer;
    alone.push_back(ops::int4_linears_shared_input(std::span<Node* const>(&one, 1), x, true).at(0));
  }
  std::vector<Node*> set;
  for (Node& layer : layers) set.push_back(&layer);
  for (int threads : {2, 3}) {
    set_num_threads(threads);
    for (int call = 0; call < 30; ++call) {
      const std::vector<Tensor> together = ops::int4_linears_shared_input(set, x, true);
      for (size_t l = 0; l < layers.size(); ++l)
        for (int64_t r = 0; r < alone[l].numel(); ++r)
          ASSERT_EQ(together[l].data<float>()[r], alone[l].data<float>()[r]) << threads << " " << l << " " << r;
    }
  }
  set_num_threads(0);
}

TEST(Decoder, CachedDecodingEqualsTheFullForwardPass) {
  // The f32 cache holds the forward pass's keys and values exactly; the f16 cache rounds them
  // (relative error 2^-11), which moves these logits by up to ~1e-3.
  for (DType kv : {DType::f32, DType::f16}) {
    SCOPED_TRACE(dtype_name(kv));
    const double tol = kv == DType::f32 ? 1e-4 : 5e-3;
    Graph g = tiny_llama();
    const std::vector<int32_t> ids = {3, 17, 42, 8, 8, 0, 49, 21, 5};
    const int64_t t = int64_t(ids.size()), v = 50;
    Tensor tokens = Tensor::uninitialized(Shape{1, t}, DType::i64);
    std::copy(ids.begin(), ids.end(), tokens.mutable_data<int64_t>());
    Tensor full = forward(g, std::span<const Tensor>(&tokens, 1)).at(0).contiguous();
    Decoder decoder(g, {.kv_cache = kv});
    std::vector<float> prefill = decoder.feed(std::span<const int32_t>(ids.data(), 4));  // prompt of 4
    for (int64_t j = 0; j < v; ++j) EXPECT_NEAR(prefill[size_t(j)], full.data<float>()[3 * v + j], tol);
    for (int64_t i = 4; i < t; ++i) {  // then one token at a time
      std::vector<float> step = decoder.feed(std::span<const int32_t>(&ids[size_t(i)], 1));
      for (int64_t j = 0; j < v; ++j) EXPECT_NEAR(step[size_t(j)], full.data<float>()[i * v + j], tol) << "position " << i;
    }
    EXPECT_EQ(decoder.length(), t);
    decoder.reset();
    std::vector<float> again = decoder.feed(std::span<const int32_t>(ids.data(), 1));
    for (int64_t j = 0; j < v; ++j) EXPECT_NEAR(again[size_t(j)], full.data<float>()[j], tol);
    EXPECT_THROW(decoder.feed({}), UsageError);
  }
}

// A prompt fed in chunks (as `shrink generate` feeds long ones) gives the logits of the full
// forward pass at the end of every chunk: each chunk's queries see the earlier chunks' keys.
TEST(Decoder, PromptInChunksEqualsTheFullForwardPass) {
  // Both cache precisions, as in CachedDecodingEqualsTheFullForwardPass.
  for (DType kv : {DType::f32, DType::f16}) {
    SCOPED_TRACE(dtype_name(kv));
    const double tol = kv == DType::f32 ? 1e-4 : 5e-3;
    Graph g = tiny_llama();
    const std::vector<int32_t> ids = {3, 17, 42, 8, 8, 0, 49, 21, 5, 11, 30, 2};
    const int64_t t = int64_t(ids.size()), v = 50;
    Tensor tokens = Tensor::uninitialized(Shape{1, t}, DType::i64);
    std::copy(ids.begin(), ids.end(), tokens.mutable_data<int64_t>());
    Tensor full = forward(g, std::span<const Tensor>(&tokens, 1)).at(0).contiguous();
    Decoder decoder(g, {.kv_cache = kv});
    int64_t at = 0;
    for (int64_t chunk : {3, 4, 1, 4}) {
      std::vector<float> logits = decoder.feed(std::span<const int32_t>(ids.data() + at, size_t(chunk)));
      at += chunk;
      for (int64_t j = 0; j < v; ++j)
        EXPECT_NEAR(logits[size_t(j)], full.data<float>()[(at - 1) * v + j], tol) << "after " << at;
    }
    EXPECT_EQ(decoder.length(), t);
  }
}

// Past about 2^15 multiply-adds per value row the single-token attention splits the positions
// between the threads and merges the ranges' softmaxes: decoding there still gives the full forward pass's
// logits (three threads, so that the merge sees more than two ranges and an uneven split).
TEST(Decoder, LongCacheDecodingEqualsTheFullForwardPass) {
  // Both cache precisions, as in CachedDecodingEqualsTheFullForwardPass; over 600 positions of this
  // random model's large scores the f16 cache moved logits of magnitude 5-7 by up to 0.013.
  for (DType kv : {DType::f32, DType::f16}) {
    SCOPED_TRACE(dtype_name(kv));
    const double tol = kv == DType::f32 ? 1e-4 : 5e-2;
    io::LmConfig c;
    c.vocabulary = 50, c.dim = 64, c.layers = 1, c.heads = 4, c.kv_heads = 2, c.hidden = 48, c.rope_theta = 500;
    Rng rng(12);
    Graph g = io::build_llama(c, [&](const std::string& name, const Shape& shape) {
      Tensor t = Tensor::uninitialized(shape, DType::f32);
      bool norm = name.find("norm") != std::string::npos;
      for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = norm ? 1.f : 0.3f * rng.normal();
      return t;
    });
    std::vector<int32_t> ids;
    for (int i = 0; i < 600; ++i) ids.push_back(int32_t(rng.below(50)));  // 4 heads x 600 x 16 > 2^15
    const int64_t t = int64_t(ids.size()), v = 50;
    Tensor tokens = Tensor::uninitialized(Shape{1, t}, DType::i64);
    std::copy(ids.begin(), ids.end(), tokens.mutable_data<int64_t>());
    Tensor full = forward(g, std::span<const Tensor>(&tokens, 1)).at(0).contiguous();
    Decoder decoder(g, {.kv_cache = kv});
    decoder.feed(std::span<const int32_t>(ids.data(), 590));
    const int threads = num_threads();
    set_num_threads(3);
    [&] {  // stops at the first wrong logit; the thread count is restored either way
      for (int64_t i = 590; i < t; ++i) {
        std::vector<float> step = decoder.feed(std::span<const int32_t>(&ids[size_t(i)], 1));
        for (int64_t j = 0; j < v; ++j) ASSERT_NEAR(step[size_t(j)], full.data<float>()[i * v + j], tol) << "position " << i;
      }
    }();
    set_num_threads(threads);
  }
}

// The f16 cache holds half the bytes of the f32 one; a cache of any other type is refused.
TEST(Decoder, HalfPrecisionCacheHoldsHalfTheBytes) {
  Graph g = tiny_llama();
  const std::vector<int32_t> ids = {3, 17, 42, 8, 8, 0, 49, 21, 5};
  Decoder half(g), full(g, {.kv_cache = DType::f32});
  EXPECT_EQ(half.kv_cache_bytes(), 0);
  half.feed(ids);
  full.feed(ids);
  // 2 layers x (keys + values) x 2 kv heads x 64 positions (the smallest capacity) x head_dim 8
  EXPECT_EQ(full.kv_cache_bytes(), 2 * 2 * 2 * 64 * 8 * 4);
  EXPECT_EQ(half.kv_cache_bytes() * 2, full.kv_cache_bytes());
  EXPECT_THROW(Decoder(g, {.kv_cache = DType::bf16}), UsageError);
}

// A reserved cache holds its room from the first token, never regrows up to it, grows past it as
// before, and changes no logit (f16 and f32 caches; reset keeps the reservation).
TEST(Decoder, ReservedCacheNeverRegrowsAndChangesNothing) {
  Graph g = tiny_llama();
  std::vector<int32_t> ids(300);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 37 + 11) % 50);
  for (DType kv : {DType::f16, DType::f32}) {
    Decoder plain(g, {.kv_cache = kv}), reserved(g, {.kv_cache = kv});
    reserved.reserve(192);  // a whole number of key blocks
    const int64_t bytes_per_position = 2 * 2 * 2 * 8 * int64_t(dtype_size(kv));  // layers x k,v x heads x dim
    for (int pass = 0; pass < 2; ++pass) {
      plain.reset();
      reserved.reset();
      for (size_t i = 0; i < ids.size(); ++i) {
        const std::vector<float> a = plain.feed(std::span<const int32_t>(&ids[i], 1));
        const std::vector<float> b = reserved.feed(std::span<const int32_t>(&ids[i], 1));
        ASSERT_EQ(a, b) << "position " << i;
        if (i < 192) {
          ASSERT_EQ(reserved.kv_cache_bytes(), 192 * bytes_per_position) << "position " << i;
        }
      }
      EXPECT_GE(reserved.kv_cache_bytes(), 300 * bytes_per_position);  // grown past the reservation
      EXPECT_LT(plain.kv_cache_bytes(), 300 * bytes_per_position * 2);
    }
  }
  Decoder d(g);
  EXPECT_THROW(d.reserve(-1), UsageError);
}

// A decoded token of a model whose products are all int4 or int8 runs as a run_as_team team
// (SHRINK_DECODE_TEAM=0: an OpenMP region per parallel call): the logits come out bit for bit the
// same, with two threads and, where there are three cores, with three (uneven shares), past the
// length where the attention splits the positions between the threads (4 heads x 16 dims: 512
// positions).
TEST(Decoder, TokensRunAsATeamGiveTheSameLogits) {
  io::LanguageModel lm = testing::tiny_llama(3);
  compress::LlmQuantizeOptions o;
  o.method = "rtn", o.weights = {4, 32, false}, o.int8_head = true, o.quiet = true;
  compress::quantize_language_model(lm, {}, o);
  for (const Node& node : lm.graph.nodes()) ASSERT_NE(node.kind, "Linear") << node.name;
  std::vector<int32_t> ids(600);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 37 + 11) % 256);
  for (int threads : {2, 3}) {
    if (threads > available_cores()) continue;  // no team then
    set_num_threads(threads);
    Decoder team(lm.graph);
    setenv("SHRINK_DECODE_TEAM", "0", 1);
    Decoder regions(lm.graph);
    unsetenv("SHRINK_DECODE_TEAM");
    const std::vector<int32_t> prompt(ids.begin(), ids.begin() + 5);
    ASSERT_EQ(team.feed(prompt), regions.feed(prompt));
    for (size_t i = prompt.size(); i < ids.size(); ++i)
      ASSERT_EQ(team.feed(std::span<const int32_t>(&ids[i], 1)), regions.feed(std::span<const int32_t>(&ids[i], 1)))
          << threads << " threads, position " << i;
  }
  set_num_threads(0);
}

// A single token's Add + RMSNorm and SiLU x up run fused (three steps a layer of an int4 model,
// the last Add with the final norm): the logits come out bit for bit as with the nodes one by one
// (SHRINK_DECODE_FUSE=0), prompt and tokens alike.
TEST(Decoder, FusedStepsGiveTheSameLogits) {
  io::LanguageModel lm = testing::tiny_llama(3);
  compress::LlmQuantizeOptions o;
  o.method = "rtn", o.weights = {4, 32, false}, o.int8_head = true, o.quiet = true;
  compress::quantize_language_model(lm, {}, o);
  Decoder fused(lm.graph);
  setenv("SHRINK_DECODE_FUSE", "0", 1);
  Decoder alone(lm.graph);
  unsetenv("SHRINK_DECODE_FUSE");
  int64_t layers = 0;
  for (const Node& node : lm.graph.nodes()) layers += node.kind == "SiLU";
  ASSERT_GT(layers, 0);
  EXPECT_EQ(fused.fused_steps(), 3 * layers);
  EXPECT_EQ(alone.fused_steps(), 0);
  const std::vector<int32_t> prompt = {3, 14, 15, 92, 65};
  ASSERT_EQ(fused.feed(prompt), alone.feed(prompt));
  for (int32_t id = 0; id < 40; ++id) {
    const int32_t token = (id * 37 + 11) % 256;
    ASSERT_EQ(fused.feed(std::span<const int32_t>(&token, 1)), alone.feed(std::span<const int32_t>(&token, 1))) << id;
  }
}

// From the second decoded token on, a token runs the plan the first one made (an Int4Linear set,
// an attention and a fused step each a planned step: 8 a layer of the int4 model, 3 of the f32
// ones, whose products run through their ops' forward into kept slots as the rest do):
// the logits come out bit for bit as node by node (SHRINK_DECODE_PLAN=0), for an int4 model with
// an int8 head and for f32 models, past a reset and past the lengths where the attention splits
// the positions between the threads (the wide model's 8 heads x 64 dims: past 64 positions
// without the keys and values asked for ahead, past KvCache::kWarmPositions with them). The
// planned decoder's logits are read through feed_view, the alone one's through feed.
TEST(Decoder, PlannedTokensGiveTheSameLogits) {
  io::LanguageModel quantized = testing::tiny_llama(3);
  compress::LlmQuantizeOptions o;
  o.method = "rtn", o.weights = {4, 32, false}, o.int8_head = true, o.quiet = true;
  compress::quantize_language_model(quantized, {}, o);
  io::LanguageModel f32 = testing::tiny_llama(3);
  Graph wide = tiny_llama(512, 8);
  for (Graph* graph : {&quantized.graph, &f32.graph, &wide}) {
    Decoder planned(*graph);
    setenv("SHRINK_DECODE_PLAN", "0", 1);
    Decoder alone(*graph);
    unsetenv("SHRINK_DECODE_PLAN");
    int64_t layers = 0;
    for (const Node& node : graph->nodes()) layers += node.kind == "Attention";
    ASSERT_GT(layers, 0);
    const int32_t vocabulary = graph == &wide ? 50 : 256;
    for (int round = 0; round < 2; ++round) {
      const std::vector<int32_t> prompt = {3, 14, 15, 42, 35};
      ASSERT_EQ(planned.feed(prompt), alone.feed(prompt));
      EXPECT_EQ(planned.planned_steps(), round == 0 ? 0 : graph == &quantized.graph ? 8 * layers : 3 * layers);
      for (int32_t id = 0; id < 600; ++id) {
        const int32_t token = (id * 37 + 11) % vocabulary;
        const std::span<const float> view = planned.feed_view(std::span<const int32_t>(&token, 1));
        ASSERT_EQ(std::vector<float>(view.begin(), view.end()), alone.feed(std::span<const int32_t>(&token, 1)))
            << "round " << round << ", token " << id;
      }
      EXPECT_EQ(alone.planned_steps(), 0);
      planned.reset();
      alone.reset();
    }
  }
}

TEST(Decoder, SamplingFollowsItsOptions) {
  std::vector<float> logits = {0.f, 3.f, 1.f, 2.9f};
  Rng rng(1);
  EXPECT_EQ(sample_token(logits, {}, rng), 1);  // greedy
  SamplingOptions top2{1.0, 2, 1.0};
  int hits[4] = {0, 0, 0, 0};
  for (int i = 0; i < 2000; ++i) ++hits[sample_token(logits, top2, rng)];
  EXPECT_EQ(hits[0] + hits[2], 0);  // outside the top 2
  EXPECT_NEAR(double(hits[1]) / 2000, std::exp(3.0) / (std::exp(3.0) + std::exp(2.9)), 0.04);
  SamplingOptions nucleus{1.0, 0, 0.3};  // the top token alone holds more than 30%
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sample_token(logits, nucleus, rng), 1);
  EXPECT_THROW(sample_token(logits, {-1.0, 0, 1.0}, rng), UsageError);
  EXPECT_THROW(sample_token({}, {}, rng), UsageError);
}

TEST(Decoder, GreedyPicksTheFirstLargestLogit) {
  Rng rng(7);
  for (size_t n : {size_t(1), size_t(5), size_t(63), size_t(64), size_t(65), size_t(1000), size_t(49152), size_t(49155)}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> logits(n);
      for (float& x : logits) x = std::round(rng.uniform(-20.f, 20.f));  // ties are common
      if (trial % 4 == 1) logits[size_t(rng.uniform(0.f, float(n))) % n] = NAN;  // a NaN never wins
      if (trial % 4 == 2) logits.back() = 100.f;  // the maximum in the tail
      if (trial % 4 == 3) std::fill(logits.begin(), logits.end(), -INFINITY);
      std::vector<float> finite(logits);
      for (float& x : finite)
        if (std::isnan(x)) x = -INFINITY;
      const auto expected = std::max_element(finite.begin(), finite.end()) - finite.begin();
      ASSERT_EQ(sample_token(logits, {}, rng), expected) << n << " logits, trial " << trial;
    }
  }
}

}  // namespace
}  // namespace shrink::nn
