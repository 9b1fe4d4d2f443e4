// Language-model import: SmolLM2 from its GGUF reproduces an independent numpy forward pass
// (tests/fixtures/smollm2_logits.json, tools/make_llm_fixtures.py); name maps and the q/k row
// permutation invert; saving and loading keeps the model and its tokenizer.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "shrink/core/error.h"
#include "shrink/core/rng.h"
#include "shrink/eval/perplexity.h"
#include "shrink/io/llm_import.h"
#include "shrink/io/safetensors.h"
#include "shrink/nn/execute.h"
#include "test_support.h"

namespace shrink::io {
namespace {

const std::string kSmol = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

Tensor logits_of(nn::Graph& graph, const std::vector<int64_t>& ids) {
  Tensor tokens = Tensor::uninitialized(Shape{1, int64_t(ids.size())}, DType::i64);
  std::copy(ids.begin(), ids.end(), tokens.mutable_data<int64_t>());
  return nn::forward(graph, std::span<const Tensor>(&tokens, 1)).at(0).contiguous();
}

TEST(LlmImport, NameMapsInvert) {
  for (std::string g : {"blk.0.attn_q.weight", "blk.29.ffn_down.weight", "token_embd.weight", "output_norm.weight",
                        "output.weight", "blk.7.post_attention_layernorm.weight"}) {
    std::string h = gguf_to_hf_name(g);
    if (g.find("post_attention") != std::string::npos) {
      EXPECT_EQ(h, "");  // not a GGUF name
      continue;
    }
    ASSERT_FALSE(h.empty()) << g;
    EXPECT_EQ(hf_to_gguf_name(h), g);
  }
  EXPECT_EQ(gguf_to_hf_name("blk.3.attn_k.weight"), "model.layers.3.self_attn.k_proj.weight");
}

TEST(LlmImport, RopePermutationInverts) {
  Tensor w = Tensor::uninitialized(Shape{12, 3}, DType::f32);
  for (int64_t i = 0; i < w.numel(); ++i) w.mutable_data<float>()[i] = float(i);
  Tensor p = permute_rope_rows(w, 2, false);
  // Head 0 has rows 0..5 (half 3): Hugging Face rows 0,3 become adjacent rows 0,1 in llama.cpp.
  EXPECT_EQ(p.data<float>()[1 * 3], float(3 * 3));
  Tensor back = permute_rope_rows(p, 2, true);
  for (int64_t i = 0; i < w.numel(); ++i) EXPECT_EQ(back.data<float>()[i], float(i));
  EXPECT_THROW(permute_rope_rows(w, 4, false), UsageError);  // 12 rows do not split into 4 heads of pairs
}

TEST(LlmImport, SmolLM2MatchesTheNumpyReference) {
  const std::string path = testing::asset_path(kSmol);
  if (!testing::asset_present(path)) GTEST_SKIP() << "asset not fetched: " << path;
  LanguageModel lm = load_language_model(path);
  EXPECT_EQ(lm.config.layers, 30);
  EXPECT_EQ(lm.config.kv_heads, 3);
  EXPECT_TRUE(lm.config.tied_embeddings);
  std::ifstream stream(testing::fixture_path("smollm2_logits.json"));
  const auto ref = nlohmann::json::parse(stream);
  const std::vector<int64_t> ids = ref["ids"].get<std::vector<int64_t>>();
  std::vector<int32_t> ids32(ids.begin(), ids.end());
  EXPECT_EQ(lm.tokenizer->encode("It is a truth universally acknowledged, that a single"), ids32);
  Tensor logits = logits_of(lm.graph, ids);
  const int64_t v = logits.shape()[2], t = int64_t(ids.size());
  const float* last = logits.data<float>() + (t - 1) * v;
  const auto top_ids = ref["top_ids"].get<std::vector<int64_t>>();
  const auto top_logits = ref["top_logits"].get<std::vector<double>>();
  EXPECT_EQ(std::max_element(last, last + v) - last, top_ids[0]);
  for (size_t i = 0; i < top_ids.size(); ++i) EXPECT_NEAR(last[top_ids[i]], top_logits[i], 2e-3) << "token " << top_ids[i];
  for (const auto& sample : ref["first_position_logits_sample"])
    EXPECT_NEAR(logits.data<float>()[sample[0].get<int64_t>()], sample[1].get<double>(), 2e-3);
}

// A GGUF is known by its magic whatever its name (llama.cpp's older files were *.bin); a file that
// is neither GGUF nor safetensors gets an error that says so, not a safetensors parse error.
TEST(LlmImport, FilesAreKnownByTheirFirstBytesNotTheirNames) {
  const std::string dir = ::testing::TempDir();
  const auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
    return dir + "/" + name;
  };
  const auto expect_format_error = [](const std::string& path, const std::string& says) {
    try {
      load_language_model(path);
      ADD_FAILURE() << path << " loaded";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  const std::string junk = write("junk_model.bin", std::string("\x8f\x01\x00\x00\x00\x00\x00\x00not json at all", 23));
  EXPECT_FALSE(is_language_model_path(junk));
  expect_format_error(junk, "neither safetensors, GGUF nor ONNX");
  // GGUF's magic with a version no reader knows: routed to the GGUF reader, which says what is wrong.
  const std::string bad_gguf = write("model_q4.bin", std::string("GGUF\x09\x00\x00\x00", 8) + std::string(32, '\0'));
  EXPECT_TRUE(is_language_model_path(bad_gguf));
  expect_format_error(bad_gguf, "GGUF version 9");

  const std::string path = testing::asset_path(kSmol);
  if (!testing::asset_present(path)) GTEST_SKIP() << "asset not fetched: " << path;
  const std::string renamed = dir + "/smollm2_renamed.bin";
  std::remove(renamed.c_str());
  ASSERT_EQ(symlink(path.c_str(), renamed.c_str()), 0);
  EXPECT_TRUE(is_language_model_path(renamed));
  const LanguageModel lm = load_language_model(renamed);
  EXPECT_EQ(lm.source_format, "gguf");
  EXPECT_EQ(lm.config.layers, 30);
}

TEST(LlmImport, SavedLanguageModelsLoadWithTheirTokenizer) {
  LmConfig c;
  c.vocabulary = 8, c.dim = 16, c.layers = 1, c.heads = 2, c.kv_heads = 1, c.hidden = 24;
  int64_t counter = 0;
  LanguageModel lm;
  lm.config = c;
  lm.graph = build_llama(c, [&](const std::string&, const Shape& shape) {
    Tensor t = Tensor::uninitialized(shape, DType::f32);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = float((counter++ % 13) - 6) * 0.05f;
    return t;
  });
  lm.tokenizer = make_wordpiece({{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "##b", "."}});
  const std::string path = ::testing::TempDir() + "/tiny_lm.shrink";
  save_language_model(path, lm, {{"technique", "test"}});
  EXPECT_TRUE(is_language_model_path(path));
  LanguageModel back = load_language_model(path);
  EXPECT_EQ(back.source_format, "shrink");
  EXPECT_EQ(back.config.to_json(), c.to_json());
  EXPECT_EQ(back.tokenizer->encode("abb a."), lm.tokenizer->encode("abb a."));
  EXPECT_EQ(back.tokenizer->encode("abb a."), (std::vector<int32_t>{2, 4, 6, 6, 4, 7, 3}));
  // The tied embedding is stored once and shared again.
  EXPECT_EQ(back.graph.node("lm_head").param("weight").value.raw_data(),
            back.graph.node("model.embed_tokens").param("weight").value.raw_data());
  EXPECT_EQ(SafetensorsFile::open(path).find("lm_head.weight"), nullptr);
  Tensor a = logits_of(lm.graph, {2, 4, 6, 3}), b = logits_of(back.graph, {2, 4, 6, 3});
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(a.data<float>()[i], b.data<float>()[i]);
}

TEST(LlmImport, HuggingFaceFolderLoadsLikeTheGraphItCameFrom) {
  // A tiny Llama written as a Hugging Face folder: config.json, model.safetensors (bf16 weights,
  // untied head), tokenizer.json (byte-level BPE).
  LmConfig c;
  c.vocabulary = 300, c.dim = 32, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.hidden = 40, c.tied_embeddings = false;
  c.rope_theta = 1000;
  int64_t counter = 0;
  nn::Graph g = build_llama(c, [&](const std::string&, const Shape& shape) {
    Tensor t = Tensor::uninitialized(shape, DType::f32);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = float((counter++ * 7919) % 29 - 14) / 64.f;
    return t;  // multiples of 1/64 below 1: exact in bf16
  });
  const std::string folder = ::testing::TempDir() + "/hf_llama";
  ::mkdir(folder.c_str(), 0755);
  std::vector<NamedTensor> tensors;
  for (const auto& [name, p] : g.named_params()) tensors.push_back({name, p->value.to(DType::bf16)});
  save_safetensors(folder + "/model.safetensors", tensors);
  std::ofstream(folder + "/config.json") << nlohmann::json{
      {"model_type", "llama"}, {"vocab_size", 300}, {"hidden_size", 32}, {"num_hidden_layers", 2},
      {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 40}, {"rope_theta", 1000.0},
      {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", false}}.dump();
  nlohmann::json vocab = nlohmann::json::object();
  int extra = 0;
  for (int b = 0; b < 256; ++b) {  // GPT-2's byte alphabet
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    std::string ch;
    char32_t cp = printable ? char32_t(b) : char32_t(256 + extra++);
    if (cp < 0x80) ch = char(cp);
    else ch = {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
    vocab[ch] = b;
  }
  vocab["he"] = 256;
  vocab["hel"] = 257;
  std::ofstream(folder + "/tokenizer.json") << nlohmann::json{
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"h e", "he l"}}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
      {"added_tokens", {{{"id", 299}, {"content", "<|end|>"}}}}}.dump();
  LanguageModel lm = load_language_model(folder);
  EXPECT_EQ(lm.source_format, "hf");
  EXPECT_FALSE(lm.config.tied_embeddings);
  EXPECT_EQ(lm.tokenizer->encode("help"), (std::vector<int32_t>{257, 'p'}));
  EXPECT_EQ(lm.tokenizer->encode("hi<|end|>", true), (std::vector<int32_t>{'h', 'i', 299}));
  Tensor a = logits_of(g, {1, 256, 257, 44, 299}), b = logits_of(lm.graph, {1, 256, 257, 44, 299});
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(a.data<float>()[i], b.data<float>()[i]);
}

TEST(LlmImport, BadFilesAreClearErrors) {
  EXPECT_THROW(load_language_model("/nonexistent/model.gguf"), Error);
  const std::string bad = ::testing::TempDir() + "/not_a_model.gguf";
  std::ofstream(bad) << "GGUF but not really";
  EXPECT_THROW(load_language_model(bad), FormatError);
  const std::string folder = ::testing::TempDir() + "/hf_folder";
  ::mkdir(folder.c_str(), 0755);
  std::ofstream(folder + "/config.json") << R"({"model_type": "gpt_neox"})";
  EXPECT_THROW(load_language_model(folder), UnsupportedError);
  std::ofstream(folder + "/config.json") << R"({"model_type": "llama", "vocab_size": 10})";
  EXPECT_THROW(load_language_model(folder), FormatError);
  // config.json must be an object with a string model_type (found by fuzzing: both escaped as
  // nlohmann's type_error, exit code 3).
  for (const char* config : {R"(" bh")", "[1, 2]", "7", R"({"model_type": 5})", R"({"model_type": "bert", "vocab_size": "x"})",
                             R"({"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 1,
                                 "num_attention_heads": 1, "intermediate_size": 8, "rope_theta": "high"})"}) {
    std::ofstream(folder + "/config.json") << config;
    EXPECT_THROW(load_language_model(folder), FormatError) << config;
  }
  // Sizes must be integers: a float beyond int64's range was cast to int64 (undefined behaviour).
  for (const char* type : {"llama", "bert"})
    for (const char* value : {"2.6e31", "8.5", "-1e300", "\"64\""}) {
      std::ofstream(folder + "/config.json")
          << fmt::format(R"({{"model_type": "{}", "vocab_size": 10, "hidden_size": {}, "num_hidden_layers": 1,
                            "num_attention_heads": 1, "intermediate_size": 8, "max_position_embeddings": 8}})",
                         type, value);
      try {
        load_language_model(folder);
        ADD_FAILURE() << type << " " << value << " loaded";
      } catch (const FormatError& e) {
        EXPECT_NE(std::string(e.what()).find("'hidden_size' must be an integer"), std::string::npos) << e.what();
      }
    }
}

// A stored config's sizes must be JSON integers: 2.6e31 was cast to int64 (undefined behaviour).
TEST(LlmImport, StoredConfigSizesMustBeIntegers) {
  nlohmann::json j = {{"vocabulary", 256}, {"dim", 64}, {"layers", 2}, {"heads", 4}, {"kv_heads", 2}, {"hidden", 96}};
  EXPECT_EQ(LmConfig::from_json(j).dim, 64);
  for (const char* key : {"vocabulary", "dim", "layers", "heads", "kv_heads", "hidden"}) {
    nlohmann::json bad = j;
    bad[key] = 2.6e31;
    EXPECT_THROW(LmConfig::from_json(bad), FormatError) << key;
  }
  j["context"] = 1e300;
  EXPECT_THROW(LmConfig::from_json(j), FormatError);
}

TEST(Perplexity, IsExpOfTheMeanNllOverNonOverlappingWindows) {
  // A "model" whose logits are uniform: perplexity equals the vocabulary size exactly.
  nn::Graph g;
  int x = g.add_input("tokens", Shape{-1, -1}, DType::i64);
  nn::Node embed{"embed", "Embedding", {{"num_embeddings", 7}, {"embedding_dim", 7}}, {x}, {}, {}};
  embed.params.push_back({"weight", Tensor::zeros(Shape{7, 7}, DType::f32), {}, true});
  g.mark_output(g.add(std::move(embed)));
  std::vector<int32_t> stream(50);
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = int32_t(i % 7);
  eval::PerplexityReport r = eval::evaluate_perplexity(g, stream, 16);
  EXPECT_EQ(r.windows, 3);         // 50 / 16, the tail dropped
  EXPECT_EQ(r.predicted, 3 * 15);  // every position but each window's last
  EXPECT_NEAR(r.perplexity(), 7.0, 1e-9);
  EXPECT_THROW(eval::evaluate_perplexity(g, stream, 64), UsageError);  // shorter than a window
  stream[20] = 9;
  EXPECT_THROW(eval::evaluate_perplexity(g, stream, 16), UsageError);  // id outside the vocabulary
}

TEST(Perplexity, MatchesTheLogSoftmaxComputedInDouble) {
  // Logits that differ from row to row (the embedding's rows, spread over +-30 so that the
  // maximum's subtraction matters): the float exponentials of the log-sum-exp against libm's
  // double ones. 37 entries: two 16-lane blocks of the row maximum and a tail.
  constexpr int64_t kVocabulary = 37;
  Rng rng(11);
  Tensor weight = Tensor::empty(Shape{kVocabulary, kVocabulary}, DType::f32);
  float* w = weight.mutable_data<float>();
  for (int64_t i = 0; i < kVocabulary * kVocabulary; ++i) w[i] = rng.uniform(-30.f, 30.f);
  nn::Graph g;
  int x = g.add_input("tokens", Shape{-1, -1}, DType::i64);
  nn::Node embed{"embed", "Embedding", {{"num_embeddings", kVocabulary}, {"embedding_dim", kVocabulary}}, {x}, {}, {}};
  embed.params.push_back({"weight", weight, {}, true});
  g.mark_output(g.add(std::move(embed)));
  std::vector<int32_t> stream(40);
  for (auto& id : stream) id = int32_t(rng.below(kVocabulary));
  double nll = 0;
  for (int64_t window = 0; window < 2; ++window)
    for (int64_t i = 0; i < 19; ++i) {  // position i of the window predicts position i + 1
      const float* row = w + stream[size_t(window * 20 + i)] * kVocabulary;
      double top = row[0], sum = 0;
      for (int64_t j = 0; j < kVocabulary; ++j) top = std::max(top, double(row[j]));
      for (int64_t j = 0; j < kVocabulary; ++j) sum += std::exp(double(row[j]) - top);
      nll += std::log(sum) + top - row[stream[size_t(window * 20 + i + 1)]];
    }
  const eval::PerplexityReport r = eval::evaluate_perplexity(g, stream, 20);
  ASSERT_EQ(r.predicted, 38);
  EXPECT_NEAR(r.nll, nll / 38, 1e-6 * (nll / 38));
}

}  // namespace
}  // namespace shrink::io
