// UTF-8 decoding and the Unicode classes the tokenizers' pre-tokenizers use (from ICU).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shrink::unicode {

struct CodePoint {
  char32_t value;  // U+FFFD for a byte that is not valid UTF-8 (taken one byte at a time)
  size_t begin, end;  // byte range in the text
};
std::vector<CodePoint> decode_utf8(std::string_view text);
void append_utf8(std::string& out, char32_t c);

bool is_letter(char32_t c);      // \p{L}
bool is_number(char32_t c);      // \p{N} (Nd, Nl, No)
bool is_whitespace(char32_t c);  // \s: the White_Space property
bool is_punctuation(char32_t c);  // BERT: \p{P} or ASCII symbols
bool is_control(char32_t c);      // BERT: Cc/Cf other than \t \n \r
bool is_cjk(char32_t c);          // BERT's CJK ideograph blocks
// NFD, drop combining marks (Mn), lowercase: BERT uncased's normaliser for one string.
std::string strip_accents_lower(std::string_view text, bool lowercase, bool strip);

}  // namespace shrink::unicode
