// Llama-architecture language models from GGUF and Hugging Face folders (see llm_import.h).
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <regex>

#include "io/file_kind.h"
#include "io/hf_folder.h"
#include "io/json_checked.h"
#include "shrink/core/error.h"
#include "shrink/io/gguf.h"
#include "shrink/io/llm_import.h"
#include "shrink/io/native_model.h"
#include "shrink/io/safetensors.h"

namespace shrink::io {
namespace {

using nlohmann::json;

// The per-layer tensors: GGUF suffix <-> Hugging Face suffix.
constexpr std::pair<const char*, const char*> kLayerNames[] = {
    {"attn_norm", "input_layernorm"},     {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},       {"attn_output", "self_attn.o_proj"},
    {"ffn_norm", "post_attention_layernorm"}, {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};
constexpr std::pair<const char*, const char*> kGlobalNames[] = {
    {"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"}};

nn::Node linear_node(const std::string& name, int x, int64_t in, int64_t out, Tensor w) {
  nn::Node node{name, "Linear", {{"in_features", in}, {"out_features", out}}, {x}, {}, {}};
  node.params.push_back({"weight", std::move(w), {}, true});
  return node;
}

nn::Node norm_node(const std::string& name, int x, int64_t dim, double eps, Tensor w) {
  nn::Node node{name, "RMSNorm", {{"normalized_shape", dim}, {"eps", eps}}, {x}, {}, {}};
  node.params.push_back({"weight", std::move(w), {}, true});
  return node;
}

int64_t need_int(const GgufFile& file, const std::string& key) {
  std::optional<uint64_t> v = file.get_uint(key);
  if (!v || *v == 0 || *v > (uint64_t(1) << 31))
    throw FormatError(fmt::format("the GGUF file lacks a valid '{}'", key), file.source_name());
  return int64_t(*v);
}

double gguf_float(const GgufFile& file, const std::string& key, double fallback) {
  const GgufValue* v = file.find(key);
  std::optional<double> f = v ? v->as_float() : std::nullopt;
  return f ? *f : fallback;
}

bool exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

bool is_directory(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

}  // namespace

json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError("cannot open", path);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("not valid JSON: {}", e.what()), path);
  }
  if (!j.is_object()) throw FormatError("not a JSON object", path);
  return j;
}

int64_t hf_config_integer(const json& config, const char* key, const std::string& folder) {
  return json_integer(config.at(key), fmt::format("config.json's '{}'", key), folder);
}

Tensor safetensors_weight(const SafetensorsFile& file, const std::string& folder, const std::string& name,
                          const Shape& shape) {
  const SafetensorsEntry* e = file.find(name);
  if (!e) throw FormatError(fmt::format("model.safetensors lacks '{}'", name), folder);
  if (e->shape != shape)
    throw FormatError(fmt::format("'{}' has shape {}, config.json implies {}", name, e->shape.to_string(), shape.to_string()), folder);
  return file.tensor(name).to(DType::f32).contiguous();
}

json LmConfig::to_json() const {
  return {{"architecture", architecture}, {"vocabulary", vocabulary}, {"dim", dim}, {"layers", layers},
          {"heads", heads}, {"kv_heads", kv_heads}, {"hidden", hidden}, {"context", context},
          {"rope_theta", rope_theta}, {"norm_eps", norm_eps}, {"tied_embeddings", tied_embeddings}};
}

LmConfig LmConfig::from_json(const json& j) {
  LmConfig c;
  try {
    const auto integer = [&](const char* key) { return json_integer(j.at(key), fmt::format("config '{}'", key)); };
    c.vocabulary = integer("vocabulary"), c.dim = integer("dim"), c.layers = integer("layers"), c.heads = integer("heads");
    c.kv_heads = integer("kv_heads"), c.hidden = integer("hidden");
    c.context = j.contains("context") ? integer("context") : 0;
    c.architecture = j.value("architecture", "llama");
    c.rope_theta = j.value("rope_theta", 10000.0), c.norm_eps = j.value("norm_eps", j.value("rms_eps", 1e-5));
    c.tied_embeddings = j.value("tied_embeddings", true);
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("the language-model config is malformed: {}", e.what()));
  }
  bool ok = c.vocabulary > 0 && c.dim > 0 && c.layers > 0 && c.heads > 0 && c.kv_heads > 0 && c.hidden > 0 &&
            c.dim % c.heads == 0 && c.heads % c.kv_heads == 0 && c.rope_theta > 0 && c.norm_eps > 0 &&
            ((c.architecture == "llama" && c.head_dim() % 2 == 0) || (c.architecture == "bert" && c.context > 0));
  if (!ok)
    throw FormatError(fmt::format("the language-model config is inconsistent: {}",
                                  c.to_json().dump(-1, ' ', false, json::error_handler_t::replace)));
  return c;
}

std::string gguf_to_hf_name(const std::string& g) {
  static const std::regex layer(R"(blk\.(\d+)\.(\w+)\.weight)");
  std::smatch m;
  if (std::regex_match(g, m, layer)) {
    for (auto [gg, hf] : kLayerNames)
      if (m[2] == gg) return fmt::format("model.layers.{}.{}.weight", m[1].str(), hf);
    return {};
  }
  for (auto [gg, hf] : kGlobalNames)
    if (g == std::string(gg) + ".weight") return std::string(hf) + ".weight";
  return {};
}

std::string hf_to_gguf_name(const std::string& h) {
  static const std::regex layer(R"(model\.layers\.(\d+)\.([\w.]+)\.weight)");
  std::smatch m;
  if (std::regex_match(h, m, layer)) {
    for (auto [gg, hf] : kLayerNames)
      if (m[2] == hf) return fmt::format("blk.{}.{}.weight", m[1].str(), gg);
    return {};
  }
  for (auto [gg, hf] : kGlobalNames)
    if (h == std::string(hf) + ".weight") return std::string(gg) + ".weight";
  return {};
}

Tensor permute_rope_rows(const Tensor& weight, int64_t heads, bool inverse) {
  const Tensor w = weight.contiguous();
  int64_t rows = w.shape()[0], cols = w.numel() / rows, half = rows / heads / 2;
  if (rows % (2 * heads)) throw UsageError(fmt::format("{} rows do not split into {} heads of pairs", rows, heads));
  Tensor out = Tensor::uninitialized(w.shape(), DType::f32);
  const float* src = w.data<float>();
  float* dst = out.mutable_data<float>();
  // Hugging Face row (h, i, j) (i in {0, 1} selects the half) is llama.cpp's row (h, j, i).
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < half; ++j) {
        int64_t hf = (h * 2 + i) * half + j, gg = (h * half + j) * 2 + i;
        int64_t from = inverse ? gg : hf, to = inverse ? hf : gg;
        std::memcpy(dst + to * cols, src + from * cols, size_t(cols) * sizeof(float));
      }
  return out;
}

nn::Graph build_llama(const LmConfig& c, const WeightSource& weight) {
  nn::Graph g;
  int64_t d = c.dim, hd = c.head_dim();
  int x = g.add_input("tokens", Shape{-1, -1}, DType::i64);
  Tensor embed = weight("model.embed_tokens.weight", Shape{c.vocabulary, d});
  {
    nn::Node node{"model.embed_tokens", "Embedding", {{"num_embeddings", c.vocabulary}, {"embedding_dim", d}}, {x}, {}, {}};
    node.params.push_back({"weight", embed, {}, true});
    x = g.add(std::move(node));
  }
  for (int64_t l = 0; l < c.layers; ++l) {
    std::string p = fmt::format("model.layers.{}.", l);
    auto w = [&](const std::string& local, const Shape& shape) { return weight(p + local + ".weight", shape); };
    int h = g.add(norm_node(p + "input_layernorm", x, d, c.norm_eps, w("input_layernorm", Shape{d})));
    int q = g.add(linear_node(p + "self_attn.q_proj", h, d, c.heads * hd, w("self_attn.q_proj", Shape{c.heads * hd, d})));
    int k = g.add(linear_node(p + "self_attn.k_proj", h, d, c.kv_heads * hd, w("self_attn.k_proj", Shape{c.kv_heads * hd, d})));
    int v = g.add(linear_node(p + "self_attn.v_proj", h, d, c.kv_heads * hd, w("self_attn.v_proj", Shape{c.kv_heads * hd, d})));
    int a = g.add(nn::Node{p + "self_attn", "Attention",
                           {{"num_heads", c.heads}, {"num_kv_heads", c.kv_heads}, {"rope", true}, {"rope_theta", c.rope_theta}},
                           {q, k, v}, {}, {}});
    int o = g.add(linear_node(p + "self_attn.o_proj", a, c.heads * hd, d, w("self_attn.o_proj", Shape{d, c.heads * hd})));
    x = g.add(nn::Node{p + "attn_residual", "Add", json::object(), {x, o}, {}, {}});
    h = g.add(norm_node(p + "post_attention_layernorm", x, d, c.norm_eps, w("post_attention_layernorm", Shape{d})));
    int gate = g.add(linear_node(p + "mlp.gate_proj", h, d, c.hidden, w("mlp.gate_proj", Shape{c.hidden, d})));
    gate = g.add(nn::Node{p + "mlp.act", "SiLU", json::object(), {gate}, {}, {}});
    int up = g.add(linear_node(p + "mlp.up_proj", h, d, c.hidden, w("mlp.up_proj", Shape{c.hidden, d})));
    int mixed = g.add(nn::Node{p + "mlp.mul", "Mul", json::object(), {gate, up}, {}, {}});
    int down = g.add(linear_node(p + "mlp.down_proj", mixed, c.hidden, d, w("mlp.down_proj", Shape{d, c.hidden})));
    x = g.add(nn::Node{p + "mlp_residual", "Add", json::object(), {x, down}, {}, {}});
  }
  x = g.add(norm_node("model.norm", x, d, c.norm_eps, weight("model.norm.weight", Shape{d})));
  Tensor head = c.tied_embeddings ? embed : weight("lm_head.weight", Shape{c.vocabulary, d});
  int logits = g.add(linear_node("lm_head", x, d, c.vocabulary, head));
  g.mark_output(logits);
  g.set_value_name(logits, "logits");
  g.validate();
  return g;
}

LanguageModel load_llama_gguf(const std::string& path) {
  GgufFile file = GgufFile::open(path);
  std::string arch = file.get_string("general.architecture").value_or("");
  if (arch != "llama")
    throw UnsupportedError(fmt::format("GGUF architecture '{}' (shrink imports 'llama')", arch), path);
  LmConfig c;
  c.dim = need_int(file, "llama.embedding_length");
  c.layers = need_int(file, "llama.block_count");
  c.heads = need_int(file, "llama.attention.head_count");
  c.kv_heads = file.get_uint("llama.attention.head_count_kv") ? need_int(file, "llama.attention.head_count_kv") : c.heads;
  c.hidden = need_int(file, "llama.feed_forward_length");
  c.context = file.get_uint("llama.context_length") ? need_int(file, "llama.context_length") : 0;
  c.rope_theta = gguf_float(file, "llama.rope.freq_base", 10000.0);
  c.norm_eps = gguf_float(file, "llama.attention.layer_norm_rms_epsilon", 1e-5);
  const GgufTensorInfo* embed = file.find_tensor("token_embd.weight");
  if (!embed || embed->shape.rank() != 2) throw FormatError("the GGUF file has no 2-D token_embd.weight", path);
  c.vocabulary = embed->shape[0];
  c.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  c = LmConfig::from_json(c.to_json());  // checks consistency
  auto weight = [&](const std::string& name, const Shape& shape) {
    std::string gname = hf_to_gguf_name(name);
    const GgufTensorInfo* info = file.find_tensor(gname);
    if (!info) throw FormatError(fmt::format("the GGUF file lacks tensor '{}'", gname), path);
    if (info->shape != shape)
      throw FormatError(fmt::format("tensor '{}' has shape {}, the config implies {}", gname, info->shape.to_string(), shape.to_string()), path);
    Tensor t = file.to_f32(*info).contiguous().clone();
    if (gname.find("attn_q.") != std::string::npos) t = permute_rope_rows(t, c.heads, true);
    if (gname.find("attn_k.") != std::string::npos) t = permute_rope_rows(t, c.kv_heads, true);
    return t;
  };
  LanguageModel model{build_llama(c, weight), tokenizer_from_gguf(file), c, path, "gguf"};
  return model;
}

LanguageModel load_llama_hf(const std::string& folder) {
  json cfg = read_json_file(folder + "/config.json");
  const auto model_type = cfg.find("model_type");
  if (model_type != cfg.end() && !model_type->is_string()) throw FormatError("config.json's model_type is not a string", folder);
  const std::string type = model_type == cfg.end() ? "" : model_type->get<std::string>();
  if (type == "bert") return load_bert_hf(folder);
  if (type != "llama" && type != "mistral")
    throw UnsupportedError(fmt::format("model_type '{}' (shrink imports Llama-architecture decoders)", type), folder);
  LmConfig c;
  try {
    const auto integer = [&](const char* key) { return hf_config_integer(cfg, key, folder); };
    c.vocabulary = integer("vocab_size"), c.dim = integer("hidden_size"), c.layers = integer("num_hidden_layers");
    c.heads = integer("num_attention_heads");
    c.kv_heads = cfg.contains("num_key_value_heads") ? integer("num_key_value_heads") : c.heads;
    c.hidden = integer("intermediate_size");
    c.context = cfg.contains("max_position_embeddings") ? integer("max_position_embeddings") : 0;
    c.rope_theta = cfg.value("rope_theta", 10000.0), c.norm_eps = cfg.value("rms_norm_eps", 1e-5);
    c.tied_embeddings = cfg.value("tie_word_embeddings", false);
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("config.json lacks a Llama field or has one of the wrong type: {}", e.what()), folder);
  }
  c = LmConfig::from_json(c.to_json());
  SafetensorsFile file = SafetensorsFile::open(folder + "/model.safetensors");
  auto weight = [&](const std::string& name, const Shape& shape) { return safetensors_weight(file, folder, name, shape); };
  return LanguageModel{build_llama(c, weight), tokenizer_from_hf_json(folder + "/tokenizer.json"), c, folder, "hf"};
}

namespace {

// Named *.gguf, or a GGUF by its first bytes whatever its name (llama.cpp's older files were *.bin).
bool is_gguf_path(const std::string& path) {
  return (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) ||
         sniff_model_file(path) == ModelFileKind::gguf;
}

}  // namespace

bool is_language_model_path(const std::string& path) {
  if (is_directory(path)) return exists(path + "/config.json");
  if (is_gguf_path(path)) return true;
  if (!is_native_model(path)) return false;
  return load_model(path).provenance.contains("language_model");
}

LanguageModel load_language_model(const std::string& path) {
  if (is_directory(path)) return load_llama_hf(path);
  if (!exists(path)) throw IoError("no such file", path);
  if (is_gguf_path(path)) return load_llama_gguf(path);
  LoadedModel loaded = load_model(path);  // a file of neither format is refused there, with why
  if (!loaded.provenance.contains("language_model"))
    throw UsageError("this shrink model is not a language model (it stores no tokenizer)", path);
  const json& lm = loaded.provenance["language_model"];
  LanguageModel model;
  model.config = LmConfig::from_json(lm.at("config"));
  model.tokenizer = tokenizer_from_json(lm.at("tokenizer"));
  model.graph = std::move(loaded.graph);
  model.source = path;
  model.source_format = "shrink";
  return model;
}

void save_language_model(const std::string& path, const LanguageModel& model, json provenance) {
  if (!model.tokenizer) throw UsageError("a language model is saved with its tokenizer, and this one has none");
  provenance["language_model"] = {{"config", model.config.to_json()}, {"tokenizer", model.tokenizer->to_json()}};
  save_model(path, model.graph, provenance);
}

}  // namespace shrink::io
