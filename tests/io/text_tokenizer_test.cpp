// Tokenizers against ids produced by the PyPI `tokenizers` package
// (tests/fixtures/llm_tokenizers.json, made by tools/make_llm_fixtures.py), plus hand-made
// vocabularies for the pre-tokenizer's rules and bad input.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "shrink/core/error.h"
#include "shrink/io/gguf.h"
#include "shrink/io/text_tokenizer.h"
#include "test_support.h"

namespace shrink {
namespace {

nlohmann::json fixture() {
  std::ifstream stream(testing::fixture_path("llm_tokenizers.json"));
  return nlohmann::json::parse(stream);
}

std::vector<std::string> pieces(std::string_view text, bool digits) {
  std::vector<std::string> out;
  for (auto [a, b] : gpt2_pretokenize(text, digits)) out.emplace_back(text.substr(a, b - a));
  return out;
}

TEST(Pretokenize, FollowsGpt2sRegex) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("Hello world", false), (V{"Hello", " world"}));
  EXPECT_EQ(pieces("I'm here, they'll go", false), (V{"I", "'m", " here", ",", " they", "'ll", " go"}));
  EXPECT_EQ(pieces("a  b", false), (V{"a", " ", " b"}));
  EXPECT_EQ(pieces("a\n\nb  ", false), (V{"a", "\n", "\n", "b", "  "}));  // \s+(?!\S) backtracks
  EXPECT_EQ(pieces("x 123!!", false), (V{"x", " 123", "!!"}));
  EXPECT_EQ(pieces("x 123", true), (V{"x", " ", "1", "2", "3"}));
  EXPECT_EQ(pieces("caf\xc3\xa9 \xe2\x80\x94", false), (V{"caf\xc3\xa9", " \xe2\x80\x94"}));
  EXPECT_TRUE(pieces("", false).empty());
}

TEST(ByteLevelBpe, MergesLowestRankFirstAndRoundTripsAnyBytes) {
  ByteLevelBpeSpec spec;
  for (int b = 0; b < 256; ++b) spec.tokens.push_back("");
  // Build the GPT-2 alphabet: printable ASCII maps to itself; 'a' 'b' 'c' are enough here.
  spec.tokens = {"a", "b", "c", "ab", "bc", "abc"};
  spec.merges = {"b c", "a b", "a bc"};
  auto tok = make_byte_level_bpe(spec);
  EXPECT_EQ(tok->encode("abc"), (std::vector<int32_t>{5}));  // b c first, then a bc
  EXPECT_EQ(tok->encode("ab"), (std::vector<int32_t>{3}));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{5, 0}), "abca");
  EXPECT_THROW(tok->encode("abz"), UsageError);  // no token for 'z' and no unknown token
  EXPECT_THROW(tok->decode(std::vector<int32_t>{6}), UsageError);
  spec.merges = {"a q"};
  EXPECT_THROW(make_byte_level_bpe(spec), FormatError);
}

TEST(ByteLevelBpe, SmolLM2MatchesTheReferenceTokenizer) {
  const std::string path = testing::asset_path("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
  if (!testing::asset_present(path)) GTEST_SKIP() << "asset not fetched: " << path;
  auto tok = tokenizer_from_gguf(GgufFile::open(path));
  EXPECT_EQ(tok->vocabulary_size(), 49152);
  EXPECT_EQ(tok->eos, 2);
  const nlohmann::json cases = fixture()["smollm2"];
  size_t checked = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    SCOPED_TRACE(text);
    const bool special = text.find("<|im_start|>") != std::string::npos;
    const std::vector<int32_t> ids = tok->encode(text, special);
    EXPECT_EQ(ids, c["ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(tok->decode(ids), text);
    ++checked;
  }
  EXPECT_GE(checked, 20u);
  // Without parse_special the markers are plain text, split into ordinary tokens.
  EXPECT_GT(tok->encode("<|im_start|>", false).size(), 1u);
  // Bytes that are not UTF-8 (a stray continuation byte, a cut sequence) still round-trip.
  const std::string raw = "ok \x80\xbf end \xe2\x80";
  EXPECT_EQ(tok->decode(tok->encode(raw)), raw);
}

TEST(WordPiece, MiniLMMatchesTheReferenceTokenizer) {
  const std::string path = testing::asset_path("minilm/tokenizer.json");
  if (!testing::asset_present(path)) GTEST_SKIP() << "asset not fetched: " << path;
  auto tok = tokenizer_from_hf_json(path);
  EXPECT_EQ(tok->kind(), "wordpiece");
  EXPECT_EQ(tok->vocabulary_size(), 30522);
  const nlohmann::json cases = fixture()["minilm"];
  size_t checked = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    SCOPED_TRACE(text);
    EXPECT_EQ(tok->encode(text), c["ids"].get<std::vector<int32_t>>());
    ++checked;
  }
  EXPECT_GE(checked, 20u);
}

TEST(TextTokenizer, MalformedTokenizerJsonIsAFormatError) {
  const std::string path = ::testing::TempDir() + "/bad_tokenizer.json";
  std::ofstream(path) << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel"}})";
  EXPECT_THROW(tokenizer_from_hf_json(path), FormatError);
  std::ofstream(path) << "{ not json";
  EXPECT_THROW(tokenizer_from_hf_json(path), FormatError);
  EXPECT_THROW(tokenizer_from_hf_json(path + ".missing"), IoError);
  // Found by fuzzing: an added token's id of 10^12 sized the token table to 10^12 entries.
  std::ofstream(path) << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                             "added_tokens": [{"id": 1000000000000, "content": "<x>"}]})";
  EXPECT_THROW(tokenizer_from_hf_json(path), FormatError);
}

// Found by fuzzing stored tokenizers: an id written as 2.6e31 was cast to int64 (undefined);
// every id must be a JSON integer.
TEST(TextTokenizer, StoredTokenizerIdsMustBeIntegers) {
  ByteLevelBpeSpec spec;
  spec.tokens = {"a", "b", "ab"};
  spec.merges = {"a b"};
  const nlohmann::json good = make_byte_level_bpe(spec)->to_json();
  EXPECT_NO_THROW(tokenizer_from_json(good));
  for (const char* key : {"bos", "eos", "unknown", "padding"}) {
    nlohmann::json bad = good;
    bad[key] = 2.6e31;
    EXPECT_THROW(tokenizer_from_json(bad), FormatError) << key;
    bad[key] = 1.0;
    EXPECT_THROW(tokenizer_from_json(bad), FormatError) << key;
  }
  nlohmann::json bad = good;
  bad["special"] = {2.6e31};
  EXPECT_THROW(tokenizer_from_json(bad), FormatError);
  WordPieceSpec wp;
  wp.tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"};
  nlohmann::json word = make_wordpiece(wp)->to_json();
  EXPECT_NO_THROW(tokenizer_from_json(word));
  for (const nlohmann::json& limit : {nlohmann::json(3.3e39), nlohmann::json(0), nlohmann::json("100")}) {
    word["max_word_characters"] = limit;
    EXPECT_THROW(tokenizer_from_json(word), FormatError) << limit;
  }
}

}  // namespace
}  // namespace shrink
