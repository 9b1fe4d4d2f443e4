// Tokenizers of real language models, matching the reference implementations (Hugging Face's
// `tokenizers`, llama.cpp) id for id:
// - byte-level BPE (GPT-2, Radford et al. 2019; Llama-3/SmolLM2 vocabularies): bytes mapped to
//   printable characters (GPT-2's bytes_to_unicode), GPT-2's pre-tokenizer regex (optionally after
//   isolating every digit, as SmolLM2 does), then merges applied lowest rank first;
// - WordPiece (BERT, Devlin et al. 2019): BERT's normaliser (clean, lowercase, strip accents,
//   space around CJK), split on whitespace and punctuation, greedy longest-match-first sub-words.
// Both read from GGUF metadata or a Hugging Face tokenizer.json. Unicode classes come from ICU.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shrink {

class GgufFile;

class TextTokenizer {
 public:
  virtual ~TextTokenizer() = default;
  // parse_special: occurrences of special tokens' text ("<|im_start|>") become their ids;
  // otherwise they are ordinary text. BERT's encode adds [CLS] ... [SEP] when add_special.
  virtual std::vector<int32_t> encode(std::string_view text, bool parse_special = false) const = 0;
  virtual std::string decode(std::span<const int32_t> ids) const = 0;  // UsageError for bad ids
  // One token's text as decoding it alone would give (for streaming output).
  virtual std::string token_text(int32_t id) const = 0;
  virtual int64_t vocabulary_size() const = 0;
  virtual std::string kind() const = 0;  // "byte-bpe" or "wordpiece"
  // Everything needed to rebuild it (stored in shrink's model files); tokenizer_from_json reads it.
  virtual nlohmann::json to_json() const = 0;

  int32_t bos = -1, eos = -1, unknown = -1, padding = -1;
};

// SmolLM2 and other Llama-family GGUF files ("gpt2" tokenizer model). FormatError when the
// metadata is missing or inconsistent (merges naming unknown tokens, ids out of range).
std::unique_ptr<TextTokenizer> tokenizer_from_gguf(const GgufFile& file);
// A Hugging Face tokenizer.json: model "BPE" with a ByteLevel pre-tokenizer, or "WordPiece".
std::unique_ptr<TextTokenizer> tokenizer_from_hf_json(const std::string& path);
std::unique_ptr<TextTokenizer> tokenizer_from_json(const nlohmann::json& j);  // FormatError

// The building blocks, exposed for tests.
struct ByteLevelBpeSpec {
  std::vector<std::string> tokens;       // in GPT-2's byte-to-unicode alphabet
  std::vector<std::string> merges;       // "left right", best first
  std::vector<bool> special;             // per token: matched verbatim by encode(parse_special)
  bool isolate_digits = false;           // SmolLM2 ("smollm" pre-tokenizer), Llama 3 splits runs of 3
};
std::unique_ptr<TextTokenizer> make_byte_level_bpe(ByteLevelBpeSpec spec);

struct WordPieceSpec {
  std::vector<std::string> tokens;  // vocab.txt order
  bool lowercase = true;            // also strips accents, as BERT uncased
  std::string continuation = "##";
  int max_word_characters = 100;
};
std::unique_ptr<TextTokenizer> make_wordpiece(WordPieceSpec spec);

// GPT-2's pre-tokenizer on UTF-8 text: [begin, end) byte ranges of the pieces.
std::vector<std::pair<size_t, size_t>> gpt2_pretokenize(std::string_view text, bool isolate_digits);

}  // namespace shrink
