// Byte-level BPE: exact round trips, learned merges, determinism, serialisation, real text.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "shrink/core/rng.h"
#include "shrink/io/bpe.h"
#include "shrink/io/datasets.h"
#include "test_support.h"

namespace shrink {
namespace {

const std::string kText =
    "the cat sat on the mat. the cat ate the rat, and then the rat ran.\n"
    "There is nothing like staying at home for real comfort. 1815 and 1816!\n";

TEST(Bpe, PreTokenizerCoversTheTextExactly) {
  auto words = split_words(kText);
  size_t expected = 0;
  for (auto [b, e] : words) {
    EXPECT_EQ(b, expected);
    EXPECT_LT(b, e);
    expected = e;
  }
  EXPECT_EQ(expected, kText.size());
  EXPECT_EQ(kText.substr(words[1].first, words[1].second - words[1].first), " cat");
}

TEST(Bpe, LearnsFrequentPairsAndRoundTripsAnyBytes) {
  std::string corpus;
  for (int i = 0; i < 20; ++i) corpus += kText;
  BpeTokenizer tok = BpeTokenizer::train(corpus, 300);
  EXPECT_EQ(tok.size(), 300);
  auto ids = tok.encode(kText);
  EXPECT_LT(ids.size(), kText.size() / 2) << "merges should at least halve the tokens";
  EXPECT_EQ(tok.decode(ids), kText);
  // " the" is frequent enough to be a single token.
  EXPECT_EQ(tok.encode(" the").size(), 1u);
  Rng rng(3);
  std::string noise;
  for (int i = 0; i < 500; ++i) noise += char(rng.below(256));
  EXPECT_EQ(tok.decode(tok.encode(noise)), noise);
  EXPECT_EQ(BpeTokenizer::train(corpus, 300).merges(), tok.merges()) << "deterministic";
  EXPECT_THROW(tok.decode({300}), UsageError);
  EXPECT_THROW(BpeTokenizer::train(corpus, 100), UsageError);
}

TEST(Bpe, SerialisesAndRejectsMalformedDescriptions) {
  BpeTokenizer tok = BpeTokenizer::train(kText + kText, 270);
  BpeTokenizer back = BpeTokenizer::from_json(tok.to_json());
  EXPECT_EQ(back.merges(), tok.merges());
  EXPECT_EQ(back.encode(kText), tok.encode(kText));
  for (const char* bad : {R"({"type": "wordpiece", "merges": []})", R"({"type": "byte-bpe", "merges": [[1]]})",
                          R"({"type": "byte-bpe", "merges": [[1, 999]]})", R"({"type": "byte-bpe"})"})
    EXPECT_THROW(BpeTokenizer::from_json(nlohmann::json::parse(bad)), FormatError) << bad;
}

TEST(Bpe, AustenNovelsCompressToAboutThreeCharactersPerToken) {
  const std::string folder = testing::asset_path("austen");
  struct stat st {};
  if (stat((folder + "/persuasion.txt").c_str(), &st) != 0) {
    if (testing::assets_required()) FAIL() << "asset missing: " << folder;
    GTEST_SKIP() << "asset not fetched";
  }
  AustenSplit text = load_austen(folder);
  BpeTokenizer tok = BpeTokenizer::train(text.train, 1024);
  EXPECT_EQ(tok.size(), 1024);
  auto ids = tok.encode(text.eval);
  double per_token = double(text.eval.size()) / double(ids.size());
  EXPECT_GT(per_token, 2.5) << "characters per token on the held-out novel";
  EXPECT_EQ(tok.decode(ids), text.eval);
}

}  // namespace
}  // namespace shrink
