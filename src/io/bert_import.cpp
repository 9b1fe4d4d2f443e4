// BERT encoders (MiniLM, sentence-transformers folders) from Hugging Face folders (see llm_import.h).
#include <fmt/format.h>

#include "io/hf_folder.h"
#include "shrink/core/error.h"
#include "shrink/io/llm_import.h"

namespace shrink::io {
namespace {

using nlohmann::json;

nn::Node linear(const std::string& name, int x, int64_t in, int64_t out, const WeightSource& weight) {
  nn::Node node{name, "Linear", {{"in_features", in}, {"out_features", out}}, {x}, {}, {}};
  node.params.push_back({"weight", weight(name + ".weight", Shape{out, in}), {}, true});
  node.params.push_back({"bias", weight(name + ".bias", Shape{out}), {}, true});
  return node;
}

nn::Node layer_norm(const std::string& name, int x, const LmConfig& c, const WeightSource& weight) {
  nn::Node node{name, "LayerNorm", {{"normalized_shape", c.dim}, {"eps", c.norm_eps}}, {x}, {}, {}};
  node.params.push_back({"weight", weight(name + ".weight", Shape{c.dim}), {}, true});
  node.params.push_back({"bias", weight(name + ".bias", Shape{c.dim}), {}, true});
  return node;
}

}  // namespace

nn::Graph build_bert(const LmConfig& c, const WeightSource& weight) {
  if (!c.is_encoder()) throw UsageError("build_bert needs a config with architecture 'bert'");
  const int64_t d = c.dim;
  nn::Graph g;
  int x = g.add_input("tokens", Shape{-1, -1}, DType::i64);
  {
    nn::Node words{"embeddings.word_embeddings", "Embedding", {{"num_embeddings", c.vocabulary}, {"embedding_dim", d}}, {x}, {}, {}};
    words.params.push_back({"weight", weight("embeddings.word_embeddings.weight", Shape{c.vocabulary, d}), {}, true});
    x = g.add(std::move(words));
  }
  {
    // Single sentences have token type 0 throughout, so its row joins every position's row.
    Tensor positions = weight("embeddings.position_embeddings.weight", Shape{c.context, d}).clone();
    const Tensor types = weight("embeddings.token_type_embeddings.weight", Shape{-1, d});
    float* p = positions.mutable_data<float>();
    for (int64_t t = 0; t < c.context; ++t)
      for (int64_t j = 0; j < d; ++j) p[t * d + j] += types.data<float>()[j];
    nn::Node node{"embeddings.position_embeddings", "PositionEmbedding", {{"max_positions", c.context}, {"embedding_dim", d}},
                  {x}, {}, {}};
    node.params.push_back({"weight", positions, {}, true});
    x = g.add(std::move(node));
  }
  x = g.add(layer_norm("embeddings.LayerNorm", x, c, weight));
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = fmt::format("encoder.layer.{}.", l);
    int q = g.add(linear(p + "attention.self.query", x, d, d, weight));
    int k = g.add(linear(p + "attention.self.key", x, d, d, weight));
    int v = g.add(linear(p + "attention.self.value", x, d, d, weight));
    int a = g.add(nn::Node{p + "attention.self", "Attention", {{"num_heads", c.heads}, {"causal", false}}, {q, k, v}, {}, {}});
    int o = g.add(linear(p + "attention.output.dense", a, d, d, weight));
    int r = g.add(nn::Node{p + "attention.residual", "Add", json::object(), {x, o}, {}, {}});
    int h = g.add(layer_norm(p + "attention.output.LayerNorm", r, c, weight));
    int i = g.add(linear(p + "intermediate.dense", h, d, c.hidden, weight));
    i = g.add(nn::Node{p + "intermediate.act", "GELU", json::object(), {i}, {}, {}});
    int out = g.add(linear(p + "output.dense", i, c.hidden, d, weight));
    r = g.add(nn::Node{p + "output.residual", "Add", json::object(), {h, out}, {}, {}});
    x = g.add(layer_norm(p + "output.LayerNorm", r, c, weight));
  }
  int pooled = g.add(nn::Node{"pooling", "MeanPool", json::object(), {x}, {}, {}});
  g.mark_output(pooled);
  g.set_value_name(pooled, "embedding");
  g.validate();
  return g;
}

LanguageModel load_bert_hf(const std::string& folder) {
  json cfg = read_json_file(folder + "/config.json");
  LmConfig c;
  c.architecture = "bert";
  try {
    if (cfg.value("model_type", "") != "bert") throw UsageError("not a BERT config.json", folder);
    if (cfg.value("hidden_act", "gelu") != "gelu")
      throw UnsupportedError(fmt::format("hidden_act '{}' (shrink's BERT uses erf GELU)", cfg.value("hidden_act", "")), folder);
    if (cfg.value("position_embedding_type", "absolute") != "absolute")
      throw UnsupportedError("only absolute position embeddings", folder);
    const auto integer = [&](const char* key) { return hf_config_integer(cfg, key, folder); };
    c.vocabulary = integer("vocab_size"), c.dim = integer("hidden_size"), c.layers = integer("num_hidden_layers");
    c.heads = integer("num_attention_heads"), c.kv_heads = c.heads, c.hidden = integer("intermediate_size");
    c.context = integer("max_position_embeddings"), c.norm_eps = cfg.value("layer_norm_eps", 1e-12);
    c.tied_embeddings = false;
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("config.json lacks a BERT field or has one of the wrong type: {}", e.what()), folder);
  }
  c = LmConfig::from_json(c.to_json());
  SafetensorsFile file = SafetensorsFile::open(folder + "/model.safetensors");
  auto weight = [&](const std::string& name, const Shape& shape) {
    if (shape.rank() == 2 && shape[0] == -1) {  // any number of rows
      const SafetensorsEntry* e = file.find(name);
      if (!e || e->shape.rank() != 2 || e->shape[0] < 1 || e->shape[1] != shape[1])
        throw FormatError(fmt::format("model.safetensors lacks a valid '{}'", name), folder);
      return safetensors_weight(file, folder, name, e->shape);
    }
    return safetensors_weight(file, folder, name, shape);
  };
  return LanguageModel{build_bert(c, weight), tokenizer_from_hf_json(folder + "/tokenizer.json"), c, folder, "hf"};
}

}  // namespace shrink::io
