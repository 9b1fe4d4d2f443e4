// Language models from the files people publish them in, into shrink's graph:
// - Llama-architecture decoders (SmolLM2, Llama, Mistral-style): GGUF (weights dequantized to
//   f32; llama.cpp's permutation of q/k rows for its interleaved rotary embedding undone, so the
//   graph uses Hugging Face's rotate-half layout) or a Hugging Face folder (config.json,
//   model.safetensors, tokenizer.json).
// - BERT encoders (MiniLM, sentence-transformers folders): a Hugging Face folder with
//   model_type "bert" (bert_import.cpp).
// The graph: input "tokens" (N, T) i64, output "logits" (N, T, vocabulary) for decoders and
// "embedding" (N, dim) (mean over tokens of the last hidden states) for encoders; nodes carry Hugging
// Face's names ("model.layers.3.self_attn.q_proj"), so a parameter's dotted name is the name it
// has in the model's safetensors. Tied embeddings share one tensor between the embedding and
// lm_head.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "shrink/io/text_tokenizer.h"
#include "shrink/nn/graph.h"

namespace shrink::io {

// The shape of a language model. "llama": causal decoder with RMSNorm, RoPE, SwiGLU; "bert":
// bidirectional encoder with learned positions, post-LayerNorm, GELU, biases (context = the
// number of learned positions; kv_heads = heads; rope_theta and tied_embeddings unused).
struct LmConfig {
  std::string architecture = "llama";
  int64_t vocabulary = 0, dim = 0, layers = 0, heads = 0, kv_heads = 0, hidden = 0, context = 0;
  double rope_theta = 10000.0, norm_eps = 1e-5;
  bool tied_embeddings = true;
  bool is_encoder() const { return architecture == "bert"; }

  int64_t head_dim() const { return dim / heads; }
  nlohmann::json to_json() const;
  static LmConfig from_json(const nlohmann::json& j);  // FormatError when a field is bad
};

struct LanguageModel {
  nn::Graph graph;
  std::shared_ptr<const TextTokenizer> tokenizer;
  LmConfig config;
  std::string source;  // the file or folder it came from
  std::string source_format;  // "gguf", "hf", "shrink"
};

// `weight(name, shape)` returns the f32 tensor for a Hugging Face parameter name
// ("model.layers.0.mlp.up_proj.weight") with that shape.
using WeightSource = std::function<Tensor(const std::string& name, const Shape& shape)>;
nn::Graph build_llama(const LmConfig& config, const WeightSource& weight);
// BERT: word + learned position embeddings (+ token type 0, folded into the positions: single
// sentences use type 0 only), LayerNorm, then per layer attention (q/k/v/o with biases,
// bidirectional) -> Add -> LayerNorm -> intermediate (GELU, erf) -> output -> Add -> LayerNorm;
// the mean over tokens (sentence-transformers' pooling of unpadded sentences). Names as in the
// safetensors ("encoder.layer.0.attention.self.query").
nn::Graph build_bert(const LmConfig& config, const WeightSource& weight);
LanguageModel load_bert_hf(const std::string& folder);

LanguageModel load_llama_gguf(const std::string& path);
LanguageModel load_llama_hf(const std::string& folder);
// Any of the above, or a shrink model file that stores its tokenizer and config (written by
// save_language_model). FormatError / UsageError say what is wrong.
LanguageModel load_language_model(const std::string& path);
bool is_language_model_path(const std::string& path);

void save_language_model(const std::string& path, const LanguageModel& model, nlohmann::json provenance);

// GGUF tensor name <-> Hugging Face parameter name ("blk.3.attn_q.weight" <->
// "model.layers.3.self_attn.q_proj.weight"); empty when the name is not a Llama tensor.
std::string gguf_to_hf_name(const std::string& gguf_name);
std::string hf_to_gguf_name(const std::string& hf_name);
// llama.cpp's row permutation of q/k projections (rows grouped per head: rotate-half pairs
// (i, i + d/2) become adjacent); inverse = true undoes it.
Tensor permute_rope_rows(const Tensor& weight, int64_t heads, bool inverse);

}  // namespace shrink::io
