// Byte-level byte-pair encoding (Sennrich et al. 2016; byte-level as in GPT-2, Radford et al.
// 2019): tokens 0..255 are the bytes, token 256 + i is merge i. Training counts pairs inside
// pre-tokenised words (a letter run with at most one leading space, a digit run, one other byte,
// a run of spaces, one newline) and merges the most frequent pair, ties to the smallest pair, so
// the result depends only on the text. Any byte string round-trips exactly.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace shrink {

class BpeTokenizer {
 public:
  BpeTokenizer() = default;
  // vocabulary_size >= 256; stops early when no pair occurs twice. progress(merges done).
  static BpeTokenizer train(const std::string& text, int vocabulary_size,
                            const std::function<void(int)>& progress = {});
  std::vector<int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const;  // UsageError for ids out of range
  int size() const { return 256 + int(merges_.size()); }
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }

  nlohmann::json to_json() const;  // {"type": "byte-bpe", "merges": [[a, b], ...]}
  static BpeTokenizer from_json(const nlohmann::json& j);  // FormatError when malformed

 private:
  void add_merge(int32_t a, int32_t b);
  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::vector<std::string> bytes_;  // token -> its bytes
};

// The pre-tokeniser shared by training and encoding: [begin, end) byte ranges of the words.
std::vector<std::pair<size_t, size_t>> split_words(const std::string& text);

}  // namespace shrink
