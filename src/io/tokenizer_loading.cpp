// Tokenizers from GGUF metadata (tokenizer.ggml.*) and from Hugging Face's tokenizer.json.
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "io/json_checked.h"
#include "shrink/core/error.h"
#include "shrink/io/gguf.h"
#include "shrink/io/text_tokenizer.h"

namespace shrink {
namespace {

std::vector<std::string> gguf_strings(const GgufFile& file, const char* key) {
  const GgufValue* v = file.find(key);
  if (!v || v->type != GgufValueType::array || v->element_type != GgufValueType::string)
    throw FormatError(fmt::format("the GGUF file has no string array '{}'", key), file.source_name());
  std::vector<std::string> out;
  out.reserve(v->elements.size());
  for (const GgufValue& e : v->elements) out.push_back(e.text);
  return out;
}

int32_t gguf_token_id(const GgufFile& file, const char* key, size_t vocabulary) {
  std::optional<uint64_t> id = file.get_uint(key);
  if (!id) return -1;
  if (*id >= vocabulary) throw FormatError(fmt::format("'{}' = {} is outside the vocabulary of {}", key, *id, vocabulary), file.source_name());
  return int32_t(*id);
}

// tokenizer.json's model.vocab ({"token": id}) as a list by id, sized to hold `size` ids.
std::vector<std::string> vocab_by_id(const nlohmann::json& vocab, size_t size, const std::string& path) {
  std::vector<std::string> tokens(std::max(size, vocab.size()));
  for (auto& [token, id] : vocab.items()) {
    const int64_t i = io::json_integer(id, "a vocab id", path);
    if (i < 0 || size_t(i) >= tokens.size()) throw FormatError(fmt::format("vocab id {} out of range", i), path);
    tokens[size_t(i)] = token;
  }
  return tokens;
}

// WordPiece's longest word in characters: a positive integer (3.3e39 was cast to int, undefined;
// found by fuzzing).
int word_limit(const nlohmann::json& value, const std::string& path) {
  const int64_t limit = io::json_integer(value, "the longest word's character count", path);
  if (limit < 1 || limit > (int64_t(1) << 30))
    throw FormatError(fmt::format("the longest word's character count {} is out of range", limit), path);
  return int(limit);
}

}  // namespace

std::unique_ptr<TextTokenizer> tokenizer_from_gguf(const GgufFile& file) {
  std::optional<std::string> model = file.get_string("tokenizer.ggml.model");
  if (!model) throw FormatError("the GGUF file has no tokenizer (tokenizer.ggml.model)", file.source_name());
  if (*model != "gpt2")
    throw UnsupportedError(fmt::format("GGUF tokenizer model '{}' (shrink reads 'gpt2', byte-level BPE)", *model), file.source_name());
  ByteLevelBpeSpec spec;
  spec.tokens = gguf_strings(file, "tokenizer.ggml.tokens");
  spec.merges = gguf_strings(file, "tokenizer.ggml.merges");
  spec.special.assign(spec.tokens.size(), false);
  if (const GgufValue* types = file.find("tokenizer.ggml.token_type")) {
    if (types->elements.size() != spec.tokens.size())
      throw FormatError("tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in length", file.source_name());
    for (size_t i = 0; i < spec.tokens.size(); ++i) {
      std::optional<int64_t> t = types->elements[i].as_int();
      spec.special[i] = t && (*t == 3 || *t == 4);  // llama.cpp: CONTROL, USER_DEFINED
    }
  }
  std::string pre = file.get_string("tokenizer.ggml.pre").value_or("default");
  if (pre != "smollm" && pre != "default" && pre != "gpt-2")
    throw UnsupportedError(fmt::format("GGUF pre-tokenizer '{}' (shrink knows 'smollm', 'gpt-2', 'default')", pre), file.source_name());
  spec.isolate_digits = pre == "smollm";
  size_t n = spec.tokens.size();
  auto tok = make_byte_level_bpe(std::move(spec));
  tok->bos = gguf_token_id(file, "tokenizer.ggml.bos_token_id", n);
  tok->eos = gguf_token_id(file, "tokenizer.ggml.eos_token_id", n);
  tok->unknown = gguf_token_id(file, "tokenizer.ggml.unknown_token_id", n);
  tok->padding = gguf_token_id(file, "tokenizer.ggml.padding_token_id", n);
  return tok;
}

std::unique_ptr<TextTokenizer> tokenizer_from_hf_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError("cannot open the tokenizer", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("tokenizer.json is not valid JSON: {}", e.what()), path);
  }
  try {
    const nlohmann::json& m = j.at("model");
    std::string type = m.at("type").get<std::string>();
    if (type == "WordPiece") {
      WordPieceSpec spec;
      spec.tokens = vocab_by_id(m.at("vocab"), 0, path);
      spec.continuation = m.value("continuing_subword_prefix", "##");
      spec.max_word_characters =
          m.contains("max_input_chars_per_word") ? word_limit(m["max_input_chars_per_word"], path) : 100;
      if (j.contains("normalizer") && j["normalizer"].is_object()) spec.lowercase = j["normalizer"].value("lowercase", true);
      return make_wordpiece(std::move(spec));
    }
    if (type != "BPE") throw UnsupportedError(fmt::format("tokenizer model '{}' (shrink reads BPE and WordPiece)", type), path);
    ByteLevelBpeSpec spec;
    const nlohmann::json added_tokens = j.value("added_tokens", nlohmann::json::array());
    // Ids run below the vocab's size plus the added tokens' count, with room for gaps (vocabularies
    // padded to a round size); a larger one is a lie that would size the token table (found by
    // fuzzing: an id of 10^12).
    const size_t id_limit = m.at("vocab").size() + added_tokens.size() + 65536;
    size_t n = m.at("vocab").size();
    for (const auto& added : added_tokens) {
      const int64_t id = io::json_integer(added.at("id"), "an added token's id", path);
      if (id < 0 || size_t(id) >= id_limit) throw FormatError(fmt::format("added token id {} out of range", id), path);
      n = std::max(n, size_t(id) + 1);
    }
    spec.tokens = vocab_by_id(m.at("vocab"), n, path);
    spec.special.assign(n, false);
    for (const auto& added : added_tokens) {
      const size_t id = size_t(io::json_integer(added.at("id"), "an added token's id", path));
      spec.tokens[id] = added.at("content").get<std::string>();
      spec.special[id] = true;
    }
    for (const auto& merge : m.at("merges"))
      spec.merges.push_back(merge.is_string() ? merge.get<std::string>()
                                              : merge.at(0).get<std::string>() + " " + merge.at(1).get<std::string>());
    std::string pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"].dump() : "";
    if (pre.find("ByteLevel") == std::string::npos)
      throw UnsupportedError("BPE tokenizers without a ByteLevel pre-tokenizer", path);
    spec.isolate_digits = pre.find("\"individual_digits\":true") != std::string::npos;
    return make_byte_level_bpe(std::move(spec));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("tokenizer.json is malformed: {}", e.what()), path);
  }
}

std::unique_ptr<TextTokenizer> tokenizer_from_json(const nlohmann::json& j) {
  try {
    std::string type = j.at("type");
    if (type == "wordpiece") {
      WordPieceSpec spec;
      spec.tokens = j.at("tokens").get<std::vector<std::string>>();
      spec.lowercase = j.at("lowercase"), spec.continuation = j.at("continuation");
      spec.max_word_characters = word_limit(j.at("max_word_characters"), "");
      return make_wordpiece(std::move(spec));
    }
    if (type != "byte-bpe") throw FormatError(fmt::format("unknown tokenizer type '{}'", type));
    ByteLevelBpeSpec spec;
    spec.tokens = j.at("tokens").get<std::vector<std::string>>();
    spec.merges = j.at("merges").get<std::vector<std::string>>();
    spec.special.assign(spec.tokens.size(), false);
    for (const auto& special : j.at("special")) {
      const int64_t id = io::json_integer(special, "a special token id");
      if (id < 0 || size_t(id) >= spec.tokens.size()) throw FormatError(fmt::format("special token id {} out of range", id));
      spec.special[size_t(id)] = true;
    }
    spec.isolate_digits = j.at("isolate_digits");
    auto tok = make_byte_level_bpe(std::move(spec));
    int64_t n = tok->vocabulary_size();
    auto id = [&](const char* key) {
      const int64_t v = io::json_integer(j.at(key), fmt::format("the tokenizer's {} id", key));
      if (v < -1 || v >= n) throw FormatError(fmt::format("tokenizer {} id {} out of range", key, v));
      return int32_t(v);
    };
    tok->bos = id("bos"), tok->eos = id("eos"), tok->unknown = id("unknown"), tok->padding = id("padding");
    return tok;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("the stored tokenizer is malformed: {}", e.what()));
  }
}

}  // namespace shrink
