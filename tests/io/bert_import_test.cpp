// BERT encoders: MiniLM from its Hugging Face folder reproduces an independent numpy forward pass
// (tests/fixtures/minilm_embeddings.json, tools/make_llm_fixtures.py; that reference agrees with
// PyTorch's TransformerEncoderLayer within 5e-7, tools/check_minilm_torch.py); a small random
// encoder saves and loads, quantizes block by block (4-bit layers with biases run packed), and
// the sentence picker is deterministic.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "shrink/compress/llm_quantize.h"
#include "shrink/core/error.h"
#include "shrink/core/rng.h"
#include "shrink/eval/embedding_similarity.h"
#include "shrink/io/llm_import.h"
#include "shrink/nn/execute.h"
#include "compress/llm_test_models.h"
#include "test_support.h"

namespace shrink::io {
namespace {

TEST(BertImport, MiniLMMatchesTheNumpyReference) {
  const std::string folder = testing::asset_path("minilm");
  if (!testing::asset_present(folder + "/model.safetensors")) GTEST_SKIP() << "asset not fetched: " << folder;
  LanguageModel lm = load_language_model(folder);
  EXPECT_TRUE(lm.config.is_encoder());
  EXPECT_EQ(lm.config.dim, 384);
  std::ifstream in(testing::fixture_path("minilm_embeddings.json"));
  const nlohmann::json fixture = nlohmann::json::parse(in);
  for (const auto& s : fixture.at("sentences")) {
    const std::string text = s.at("text");
    SCOPED_TRACE(text);
    EXPECT_EQ(lm.tokenizer->encode(text), s.at("ids").get<std::vector<int32_t>>());
    std::vector<float> e = eval::embed_sentence(lm, text);
    std::vector<double> ref = s.at("embedding").get<std::vector<double>>();
    ASSERT_EQ(e.size(), ref.size());
    double worst = 0;
    for (size_t i = 0; i < e.size(); ++i) worst = std::max(worst, std::fabs(e[i] - ref[i]));
    EXPECT_LT(worst, 1e-4);
  }
}

using testing::tiny_bert;

TEST(BertImport, EncoderSavesLoadsAndQuantizesWithBiases) {
  LanguageModel lm = tiny_bert(1);
  std::vector<float> before = eval::embed_sentence(lm, "abb a. b a");
  EXPECT_EQ(before.size(), 64u);
  const std::string path = ::testing::TempDir() + "/tiny_bert.shrink";
  save_language_model(path, lm, {{"technique", "test"}});
  LanguageModel back = load_language_model(path);
  EXPECT_EQ(back.config.to_json(), lm.config.to_json());
  EXPECT_EQ(eval::embed_sentence(back, "abb a. b a"), before);

  // Every token sees the whole sentence: changing the last token changes the first position.
  Tensor t1 = Tensor::uninitialized(Shape{1, 3}, DType::i64), t2 = Tensor::uninitialized(Shape{1, 3}, DType::i64);
  for (int i = 0; i < 3; ++i) t1.mutable_data<int64_t>()[i] = 4, t2.mutable_data<int64_t>()[i] = i < 2 ? 4 : 5;
  int hidden = lm.graph.nodes()[size_t(lm.graph.node_index("encoder.layer.1.output.LayerNorm"))].outputs[0];
  size_t last = lm.graph.nodes().size();
  Tensor h1 = nn::forward_segment(lm.graph, 0, last, {{lm.graph.inputs()[0], t1}}, std::span<const int>(&hidden, 1)).at(0);
  Tensor h2 = nn::forward_segment(lm.graph, 0, last, {{lm.graph.inputs()[0], t2}}, std::span<const int>(&hidden, 1)).at(0);
  EXPECT_NE(h1.data<float>()[0], h2.data<float>()[0]);

  std::vector<std::vector<int32_t>> calib;
  Rng rng(3);
  for (int s = 0; s < 6; ++s) {
    calib.emplace_back();
    for (int i = 0; i < 12; ++i) calib.back().push_back(int32_t(rng.below(8)));
  }
  for (const char* method : {"rtn", "gptq", "awq"}) {
    SCOPED_TRACE(method);
    LanguageModel q = tiny_bert(1);
    compress::LlmQuantizeOptions o;
    o.quiet = true;
    o.method = method;
    o.weights = {4, 32, false};
    o.exclude = {};
    compress::LlmQuantizeReport r = compress::quantize_language_model(q, calib, o);
    EXPECT_EQ(r.layers.size(), 12u);  // q k v o intermediate output per layer
    EXPECT_EQ(q.graph.node("encoder.layer.0.attention.self.query").kind, "Int4Linear");
    EXPECT_NE(q.graph.node("encoder.layer.0.attention.self.query").find_param("bias"), nullptr);
    std::vector<float> after = eval::embed_sentence(q, "abb a. b a");
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < after.size(); ++i) dot += after[i] * before[i], na += after[i] * after[i], nb += before[i] * before[i];
    EXPECT_GT(dot / std::sqrt(na * nb), 0.95);
  }
}

TEST(EmbeddingSimilarity, SentencesArePickedEvenlyAndBadRequestsRefused) {
  std::string text = "One two three four five six. Short one. \"Seven eight nine ten eleven twelve!\" she said\n"
                     "and then  thirteen fourteen fifteen sixteen seventeen? Tail without an end";
  auto s = eval::pick_sentences(text, 3);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], "One two three four five six.");
  EXPECT_EQ(s[1], "\"Seven eight nine ten eleven twelve!\"");
  EXPECT_EQ(s[2], "she said and then thirteen fourteen fifteen sixteen seventeen?");
  EXPECT_THROW(eval::pick_sentences(text, 4), UsageError);
  EXPECT_THROW(eval::pick_sentences(text, 0), UsageError);
}

}  // namespace
}  // namespace shrink::io
