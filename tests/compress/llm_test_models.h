// A small random Llama and its calibration windows, shared by the language-model quantization
// tests (llm_quantize_test.cpp, awq_test.cpp) and the BERT import test.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "shrink/core/rng.h"
#include "shrink/io/llm_import.h"
#include "shrink/io/text_tokenizer.h"
#include "shrink/nn/execute.h"

namespace shrink::testing {

// outlier_channels > 0: the first so many channels of every RMSNorm weight are 8x larger, so
// the Linear layers after the norms see a few large input channels (as real LLMs do, and as
// AWQ's scaling needs to have something to protect).
inline io::LanguageModel tiny_llama(uint64_t seed, int outlier_channels = 0) {
  io::LmConfig c;
  c.vocabulary = 256, c.dim = 64, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.hidden = 96, c.context = 64;
  Rng rng(seed);
  auto weight = [&](const std::string& name, const Shape& shape) {
    Tensor t = Tensor::uninitialized(shape, DType::f32);
    bool norm = name.find("norm") != std::string::npos;
    for (int64_t i = 0; i < t.numel(); ++i) {
      float v = norm ? 1.f + 0.1f * rng.normal() : 0.15f * rng.normal();
      t.mutable_data<float>()[i] = norm && i < outlier_channels ? 8.f * v : v;
    }
    return t;
  };
  io::LanguageModel lm;
  lm.config = c;
  lm.graph = io::build_llama(c, weight);
  return lm;
}

// A small random BERT encoder (post-LayerNorm blocks whose q/k/v read the block input) with an
// 8-word WordPiece vocabulary.
inline io::LanguageModel tiny_bert(uint64_t seed) {
  io::LmConfig c;
  c.architecture = "bert";
  c.vocabulary = 8, c.dim = 64, c.layers = 2, c.heads = 4, c.kv_heads = 4, c.hidden = 96, c.context = 16;
  c.norm_eps = 1e-12, c.tied_embeddings = false;
  Rng rng(seed);
  io::LanguageModel lm;
  lm.config = c;
  lm.graph = io::build_bert(c, [&](const std::string& name, const Shape& shape) {
    Shape s = shape[0] == -1 ? Shape{2, shape[1]} : shape;
    Tensor t = Tensor::uninitialized(s, DType::f32);
    bool norm = name.find("LayerNorm.weight") != std::string::npos;
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = norm ? 1.f + 0.1f * rng.normal() : 0.2f * rng.normal();
    return t;
  });
  lm.tokenizer = make_wordpiece({{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "##b", "."}});
  return lm;
}

inline std::vector<std::vector<int32_t>> random_windows(int64_t count, int64_t length, uint64_t seed,
                                                        uint64_t vocabulary = 256) {
  Rng rng(seed);
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(count));
  for (auto& w : out)
    for (int64_t i = 0; i < length; ++i) w.push_back(int32_t(rng.below(vocabulary)));
  return out;
}

inline Tensor logits(nn::Graph& g, const std::vector<std::vector<int32_t>>& windows) {
  int64_t n = int64_t(windows.size()), t = int64_t(windows[0].size());
  Tensor tokens = Tensor::uninitialized(Shape{n, t}, DType::i64);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < t; ++j) tokens.mutable_data<int64_t>()[i * t + j] = windows[size_t(i)][size_t(j)];
  return nn::forward(g, std::span<const Tensor>(&tokens, 1)).at(0).contiguous();
}

inline double squared_distance(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += std::pow(double(a.data<float>()[i]) - b.data<float>()[i], 2);
  return s;
}

}  // namespace shrink::testing
