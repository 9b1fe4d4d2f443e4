// Byte-level BPE as GPT-2 and Hugging Face's `tokenizers` run it (see text_tokenizer.h).
#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "io/unicode_text.h"
#include "shrink/core/error.h"
#include "shrink/io/text_tokenizer.h"

namespace shrink {
namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100 + k in byte order, so every token is printable text.
std::array<char32_t, 256> byte_to_unicode() {
  std::array<char32_t, 256> map{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    map[size_t(b)] = printable ? char32_t(b) : next++;
  }
  return map;
}

// Pieces of one segment that holds no isolated digit (see gpt2_pretokenize).
void regex_pieces(const std::vector<unicode::CodePoint>& cps, size_t begin, size_t end,
                  std::vector<std::pair<size_t, size_t>>& out) {
  enum Class { kLetter, kNumber, kSpace, kOther };
  auto cls = [&](size_t i) {
    char32_t c = cps[i].value;
    return unicode::is_whitespace(c) ? kSpace : unicode::is_letter(c) ? kLetter : unicode::is_number(c) ? kNumber : kOther;
  };
  auto emit = [&](size_t a, size_t b) { out.emplace_back(cps[a].begin, cps[b - 1].end); };
  size_t i = begin;
  while (i < end) {
    char32_t c = cps[i].value;
    if (c == '\'' && i + 1 < end) {  // 's|'t|'re|'ve|'m|'ll|'d
      char32_t a = cps[i + 1].value, b = i + 2 < end ? cps[i + 2].value : 0;
      size_t length = (a == 's' || a == 't' || a == 'm' || a == 'd') ? 2
                      : ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) ? 3 : 0;
      if (length) {
        emit(i, i + length);
        i += length;
        continue;
      }
    }
    size_t start = i;
    Class k = cls(i);
    if (c == ' ' && i + 1 < end && cls(i + 1) != kSpace) {  // " ?X+": the space joins the run
      ++i;
      k = cls(i);
    }
    if (k != kSpace) {
      while (i < end && cls(i) == k) ++i;
      emit(start, i);
      continue;
    }
    size_t j = i;
    while (j < end && cls(j) == kSpace) ++j;
    // \s+(?!\S) keeps the run's last character back when text follows; \s+ takes a lone one.
    size_t stop = j == end ? j : (j - i >= 2 ? j - 1 : j);
    emit(i, stop);
    i = stop;
  }
}

class ByteLevelBpe final : public TextTokenizer {
 public:
  explicit ByteLevelBpe(ByteLevelBpeSpec spec) : spec_(std::move(spec)) {
    if (spec_.tokens.empty()) throw FormatError("the tokenizer has no tokens");
    if (spec_.special.size() != spec_.tokens.size()) spec_.special.resize(spec_.tokens.size(), false);
    for (size_t i = 0; i < spec_.tokens.size(); ++i) ids_.emplace(spec_.tokens[i], int32_t(i));
    std::array<char32_t, 256> forward = byte_to_unicode();
    for (int b = 0; b < 256; ++b) {
      unicode_to_byte_[forward[size_t(b)]] = uint8_t(b);
      std::string ch;
      unicode::append_utf8(ch, forward[size_t(b)]);
      auto it = ids_.find(ch);
      byte_token_[size_t(b)] = it == ids_.end() ? -1 : it->second;
    }
    for (size_t rank = 0; rank < spec_.merges.size(); ++rank) {
      const std::string& m = spec_.merges[rank];
      size_t space = m.find(' ');
      if (space == std::string::npos) throw FormatError(fmt::format("merge {} ('{}') is not two tokens", rank, m));
      auto a = ids_.find(m.substr(0, space)), b = ids_.find(m.substr(space + 1));
      auto joined = ids_.find(m.substr(0, space) + m.substr(space + 1));
      if (a == ids_.end() || b == ids_.end() || joined == ids_.end())
        throw FormatError(fmt::format("merge {} ('{}') names a token the vocabulary lacks", rank, m));
      merges_.emplace(key(a->second, b->second), Merge{int32_t(rank), joined->second});
    }
    for (size_t i = 0; i < spec_.tokens.size(); ++i)
      if (spec_.special[i] && !spec_.tokens[i].empty()) specials_.emplace_back(spec_.tokens[i], int32_t(i));
    // Longest first, so that one special token that prefixes another cannot hide it.
    std::sort(specials_.begin(), specials_.end(), [](auto& x, auto& y) { return x.first.size() > y.first.size(); });
  }

  std::vector<int32_t> encode(std::string_view text, bool parse_special) const override {
    std::vector<int32_t> ids;
    size_t at = 0;
    while (at < text.size()) {
      size_t next = text.size();
      int32_t special = -1;
      if (parse_special)
        for (const auto& [s, id] : specials_) {
          size_t found = text.find(s, at);
          if (found < next) next = found, special = id;
        }
      encode_plain(text.substr(at, next - at), ids);
      if (special < 0) break;
      ids.push_back(special);
      at = next + spec_.tokens[size_t(special)].size();
    }
    return ids;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    for (int32_t id : ids) out += token_text(id);
    return out;
  }

  std::string token_text(int32_t id) const override {
    if (id < 0 || size_t(id) >= spec_.tokens.size())
      throw UsageError(fmt::format("token id {} is outside the vocabulary of {}", id, spec_.tokens.size()));
    const std::string& token = spec_.tokens[size_t(id)];
    if (spec_.special[size_t(id)]) return token;
    std::string bytes;
    for (const unicode::CodePoint& cp : unicode::decode_utf8(token)) {
      auto it = unicode_to_byte_.find(cp.value);
      if (it != unicode_to_byte_.end()) bytes += char(it->second);
      else bytes.append(token, cp.begin, cp.end - cp.begin);  // not from the byte alphabet: as is
    }
    return bytes;
  }

  int64_t vocabulary_size() const override { return int64_t(spec_.tokens.size()); }
  std::string kind() const override { return "byte-bpe"; }
  nlohmann::json to_json() const override {
    std::vector<int32_t> special;
    for (size_t i = 0; i < spec_.special.size(); ++i)
      if (spec_.special[i]) special.push_back(int32_t(i));
    return {{"type", kind()}, {"tokens", spec_.tokens}, {"merges", spec_.merges}, {"special", special},
            {"isolate_digits", spec_.isolate_digits}, {"bos", bos}, {"eos", eos}, {"unknown", unknown},
            {"padding", padding}};
  }

 private:
  struct Merge {
    int32_t rank, result;
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
    for (auto [begin, end] : gpt2_pretokenize(text, spec_.isolate_digits)) {
      std::string_view word = text.substr(begin, end - begin);
      {
        std::lock_guard lock(cache_mutex_);
        auto hit = cache_.find(std::string(word));
        if (hit != cache_.end()) {
          ids.insert(ids.end(), hit->second.begin(), hit->second.end());
          continue;
        }
      }
      std::vector<int32_t> pieces = merge_word(word);
      ids.insert(ids.end(), pieces.begin(), pieces.end());
      std::lock_guard lock(cache_mutex_);
      if (cache_.size() < 200000) cache_.emplace(std::string(word), std::move(pieces));
    }
  }

  // Merges the lowest-ranked adjacent pair (leftmost on ties) until none is in the table.
  std::vector<int32_t> merge_word(std::string_view word) const {
    std::vector<int32_t> symbols;
    symbols.reserve(word.size());
    for (char ch : word) {
      int32_t id = byte_token_[size_t(uint8_t(ch))];
      if (id < 0) {
        if (unknown < 0) throw UsageError(fmt::format("byte 0x{:02x} has no token in this vocabulary", uint8_t(ch)));
        id = unknown;
      }
      symbols.push_back(id);
    }
    while (symbols.size() > 1) {
      int32_t best_rank = INT32_MAX, result = -1;
      size_t at = 0;
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        auto it = merges_.find(key(symbols[i], symbols[i + 1]));
        if (it != merges_.end() && it->second.rank < best_rank) best_rank = it->second.rank, result = it->second.result, at = i;
      }
      if (result < 0) break;
      symbols[at] = result;
      symbols.erase(symbols.begin() + std::ptrdiff_t(at) + 1);
    }
    return symbols;
  }

  ByteLevelBpeSpec spec_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::unordered_map<char32_t, uint8_t> unicode_to_byte_;
  std::array<int32_t, 256> byte_token_{};
  std::vector<std::pair<std::string, int32_t>> specials_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace

std::vector<std::pair<size_t, size_t>> gpt2_pretokenize(std::string_view text, bool isolate_digits) {
  std::vector<unicode::CodePoint> cps = unicode::decode_utf8(text);
  std::vector<std::pair<size_t, size_t>> out;
  if (!isolate_digits) {
    regex_pieces(cps, 0, cps.size(), out);
    return out;
  }
  size_t start = 0;  // every numeric character is a piece of its own
  for (size_t i = 0; i < cps.size(); ++i)
    if (unicode::is_number(cps[i].value)) {
      regex_pieces(cps, start, i, out);
      out.emplace_back(cps[i].begin, cps[i].end);
      start = i + 1;
    }
  regex_pieces(cps, start, cps.size(), out);
  return out;
}

std::unique_ptr<TextTokenizer> make_byte_level_bpe(ByteLevelBpeSpec spec) {
  return std::make_unique<ByteLevelBpe>(std::move(spec));
}

}  // namespace shrink
