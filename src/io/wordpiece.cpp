// BERT's WordPiece as Hugging Face's `tokenizers` runs it for BERT uncased (see text_tokenizer.h):
// BertNormalizer (clean text, space around CJK ideographs, strip accents, lowercase),
// BertPreTokenizer (split on whitespace, every punctuation character alone), greedy
// longest-match-first sub-words (a word longer than 100 characters or with no split is [UNK]),
// and [CLS] ... [SEP] around the result.
#include <fmt/format.h>

#include <unordered_map>

#include "io/unicode_text.h"
#include "shrink/core/error.h"
#include "shrink/io/text_tokenizer.h"

namespace shrink {
namespace {

class WordPiece final : public TextTokenizer {
 public:
  explicit WordPiece(WordPieceSpec spec) : spec_(std::move(spec)) {
    for (size_t i = 0; i < spec_.tokens.size(); ++i) ids_.emplace(spec_.tokens[i], int32_t(i));
    auto id_of = [&](const char* name) {
      auto it = ids_.find(name);
      if (it == ids_.end()) throw FormatError(fmt::format("the WordPiece vocabulary has no {} token", name));
      return it->second;
    };
    unknown = id_of("[UNK]");
    bos = cls_ = id_of("[CLS]");
    eos = sep_ = id_of("[SEP]");
    padding = id_of("[PAD]");
  }

  std::vector<int32_t> encode(std::string_view text, bool /*parse_special*/) const override {
    std::vector<int32_t> ids{cls_};
    for (const std::string& word : words(normalise(text))) pieces(word, ids);
    ids.push_back(sep_);
    return ids;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id == cls_ || id == sep_ || id == padding) continue;
      std::string t = token_text(id);
      if (t.rfind(spec_.continuation, 0) == 0) out += t.substr(spec_.continuation.size());
      else out += (out.empty() ? "" : " ") + t;
    }
    return out;
  }

  std::string token_text(int32_t id) const override {
    if (id < 0 || size_t(id) >= spec_.tokens.size())
      throw UsageError(fmt::format("token id {} is outside the vocabulary of {}", id, spec_.tokens.size()));
    return spec_.tokens[size_t(id)];
  }
  int64_t vocabulary_size() const override { return int64_t(spec_.tokens.size()); }
  std::string kind() const override { return "wordpiece"; }
  nlohmann::json to_json() const override {
    return {{"type", kind()}, {"tokens", spec_.tokens}, {"lowercase", spec_.lowercase},
            {"continuation", spec_.continuation}, {"max_word_characters", spec_.max_word_characters}};
  }

 private:
  std::string normalise(std::string_view text) const {
    std::string cleaned;
    for (const unicode::CodePoint& cp : unicode::decode_utf8(text)) {
      char32_t c = cp.value;
      if (c == 0 || c == 0xFFFD || unicode::is_control(c)) continue;
      if (unicode::is_whitespace(c)) {
        cleaned += ' ';
      } else if (unicode::is_cjk(c)) {
        cleaned += ' ';
        unicode::append_utf8(cleaned, c);
        cleaned += ' ';
      } else {
        unicode::append_utf8(cleaned, c);
      }
    }
    return unicode::strip_accents_lower(cleaned, spec_.lowercase, spec_.lowercase);
  }

  static std::vector<std::string> words(const std::string& text) {
    std::vector<std::string> out;
    std::string current;
    auto flush = [&] {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
    };
    for (const unicode::CodePoint& cp : unicode::decode_utf8(text)) {
      if (unicode::is_whitespace(cp.value)) {
        flush();
      } else if (unicode::is_punctuation(cp.value)) {
        flush();
        out.push_back(text.substr(cp.begin, cp.end - cp.begin));
      } else {
        current.append(text, cp.begin, cp.end - cp.begin);
      }
    }
    flush();
    return out;
  }

  void pieces(const std::string& word, std::vector<int32_t>& ids) const {
    std::vector<unicode::CodePoint> cps = unicode::decode_utf8(word);
    if (int(cps.size()) > spec_.max_word_characters) {
      ids.push_back(unknown);
      return;
    }
    std::vector<int32_t> found;
    size_t start = 0;
    while (start < cps.size()) {
      size_t end = cps.size();
      int32_t match = -1;
      for (; end > start; --end) {
        std::string candidate = (start ? spec_.continuation : "") + word.substr(cps[start].begin, cps[end - 1].end - cps[start].begin);
        auto it = ids_.find(candidate);
        if (it != ids_.end()) {
          match = it->second;
          break;
        }
      }
      if (match < 0) {
        ids.push_back(unknown);
        return;
      }
      found.push_back(match);
      start = end;
    }
    ids.insert(ids.end(), found.begin(), found.end());
  }

  WordPieceSpec spec_;
  std::unordered_map<std::string, int32_t> ids_;
  int32_t cls_ = -1, sep_ = -1;
};

}  // namespace

std::unique_ptr<TextTokenizer> make_wordpiece(WordPieceSpec spec) { return std::make_unique<WordPiece>(std::move(spec)); }

}  // namespace shrink
