// Byte-level BPE: training over word counts, encoding by merge rank with a per-word cache.
#include "shrink/io/bpe.h"

#include <fmt/format.h>

#include <cctype>
#include <map>
#include <unordered_map>

#include "shrink/core/error.h"

namespace shrink {
namespace {

enum class ByteClass { letter, digit, space, newline, other };
ByteClass classify(unsigned char c) {
  if (std::isalpha(c) || c >= 0x80 || c == '\'') return ByteClass::letter;  // UTF-8 bytes stay in words
  if (std::isdigit(c)) return ByteClass::digit;
  if (c == ' ') return ByteClass::space;
  if (c == '\n') return ByteClass::newline;
  return ByteClass::other;
}

using Pair = std::pair<int32_t, int32_t>;
struct PairHash {
  size_t operator()(const Pair& p) const { return std::hash<uint64_t>()((uint64_t(uint32_t(p.first)) << 32) | uint32_t(p.second)); }
};

void merge_in_place(std::vector<int32_t>& word, const Pair& pair, int32_t token) {
  size_t out = 0;
  for (size_t i = 0; i < word.size(); ++i) {
    if (i + 1 < word.size() && word[i] == pair.first && word[i + 1] == pair.second) {
      word[out++] = token;
      ++i;
    } else {
      word[out++] = word[i];
    }
  }
  word.resize(out);
}

}  // namespace

std::vector<std::pair<size_t, size_t>> split_words(const std::string& text) {
  std::vector<std::pair<size_t, size_t>> words;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    ByteClass c = classify(static_cast<unsigned char>(text[i]));
    // One space joins the letter or digit run that follows it (" the").
    if (c == ByteClass::space && i + 1 < text.size()) {
      ByteClass next = classify(static_cast<unsigned char>(text[i + 1]));
      if (next == ByteClass::letter || next == ByteClass::digit) c = next, ++i;
    }
    if (c == ByteClass::letter || c == ByteClass::digit || c == ByteClass::space) {
      while (i < text.size() && classify(static_cast<unsigned char>(text[i])) == c) ++i;
    } else {
      ++i;  // newline or another symbol: one byte
    }
    if (i == start) ++i;
    words.emplace_back(start, i);
  }
  return words;
}

void BpeTokenizer::add_merge(int32_t a, int32_t b) {
  if (bytes_.empty())
    for (int i = 0; i < 256; ++i) bytes_.push_back(std::string(1, char(i)));
  merges_.emplace_back(a, b);
  bytes_.push_back(bytes_[size_t(a)] + bytes_[size_t(b)]);
}

BpeTokenizer BpeTokenizer::train(const std::string& text, int vocabulary_size, const std::function<void(int)>& progress) {
  if (vocabulary_size < 256) throw UsageError("a byte-level BPE vocabulary has at least 256 tokens");
  std::map<std::string, int64_t> counts;
  for (auto [b, e] : split_words(text)) ++counts[text.substr(b, e - b)];
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> freq;
  for (const auto& [w, n] : counts) {
    words.emplace_back(w.begin(), w.end());
    for (int32_t& id : words.back()) id &= 0xff;  // char may be signed
    freq.push_back(n);
  }
  BpeTokenizer tok;
  for (int i = 0; i < 256; ++i) tok.bytes_.push_back(std::string(1, char(i)));
  std::unordered_map<Pair, int64_t, PairHash> pairs;
  for (size_t w = 0; w < words.size(); ++w)
    for (size_t i = 0; i + 1 < words[w].size(); ++i) pairs[{words[w][i], words[w][i + 1]}] += freq[w];
  while (tok.size() < vocabulary_size) {
    Pair best{-1, -1};
    int64_t best_count = 1;
    for (const auto& [p, n] : pairs)
      if (n > best_count || (n == best_count && n > 1 && p < best)) best = p, best_count = n;
    if (best.first < 0) break;
    int32_t token = tok.size();
    tok.add_merge(best.first, best.second);
    // Update pair counts only in the words that contain the pair.
    for (size_t w = 0; w < words.size(); ++w) {
      std::vector<int32_t>& word = words[w];
      bool has = false;
      for (size_t i = 0; i + 1 < word.size() && !has; ++i) has = word[i] == best.first && word[i + 1] == best.second;
      if (!has) continue;
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        auto it = pairs.find({word[i], word[i + 1]});
        if ((it->second -= freq[w]) == 0) pairs.erase(it);
      }
      merge_in_place(word, best, token);
      for (size_t i = 0; i + 1 < word.size(); ++i) pairs[{word[i], word[i + 1]}] += freq[w];
    }
    if (progress) progress(int(tok.merges_.size()));
  }
  return tok;
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text) const {
  std::unordered_map<Pair, int32_t, PairHash> rank;
  for (size_t i = 0; i < merges_.size(); ++i) rank[merges_[i]] = int32_t(i);
  std::unordered_map<std::string, std::vector<int32_t>> cache;
  std::vector<int32_t> ids;
  for (auto [b, e] : split_words(text)) {
    std::string w = text.substr(b, e - b);
    auto hit = cache.find(w);
    if (hit == cache.end()) {
      std::vector<int32_t> word(w.begin(), w.end());
      for (int32_t& id : word) id &= 0xff;
      for (;;) {  // apply the earliest-learned merge present, as training did
        int32_t best_rank = INT32_MAX;
        for (size_t i = 0; i + 1 < word.size(); ++i) {
          auto r = rank.find({word[i], word[i + 1]});
          if (r != rank.end()) best_rank = std::min(best_rank, r->second);
        }
        if (best_rank == INT32_MAX) break;
        merge_in_place(word, merges_[size_t(best_rank)], 256 + best_rank);
      }
      hit = cache.emplace(w, std::move(word)).first;
    }
    ids.insert(ids.end(), hit->second.begin(), hit->second.end());
  }
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (int32_t id : ids) {
    if (id < 0 || id >= size()) throw UsageError(fmt::format("token {} is outside the vocabulary of {}", id, size()));
    text += id < 256 ? std::string(1, char(id)) : bytes_[size_t(id)];
  }
  return text;
}

nlohmann::json BpeTokenizer::to_json() const {
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& [a, b] : merges_) merges.push_back({a, b});
  return {{"type", "byte-bpe"}, {"merges", merges}};
}

BpeTokenizer BpeTokenizer::from_json(const nlohmann::json& j) {
  if (!j.is_object() || j.value("type", "") != "byte-bpe" || !j.contains("merges") || !j["merges"].is_array())
    throw FormatError("not a byte-level BPE tokenizer description");
  BpeTokenizer tok;
  tok.bytes_.clear();
  for (int i = 0; i < 256; ++i) tok.bytes_.push_back(std::string(1, char(i)));
  for (const auto& m : j["merges"]) {
    if (!m.is_array() || m.size() != 2 || !m[0].is_number_integer() || !m[1].is_number_integer())
      throw FormatError("a merge must be a pair of token ids");
    int32_t a = m[0].get<int32_t>(), b = m[1].get<int32_t>();
    if (a < 0 || b < 0 || a >= tok.size() || b >= tok.size())
      throw FormatError(fmt::format("merge ({}, {}) names a token not yet defined", a, b));
    tok.add_merge(a, b);
  }
  return tok;
}

}  // namespace shrink
