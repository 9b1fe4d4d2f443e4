// Sentence-embedding fidelity of a compressed encoder (issue 7's MiniLM protocol): a fixed set of
// sentences from a text, each embedded alone (no padding) by the model and by its fp32
// reference; the cosine similarity per sentence, averaged.
// Sentences: the text's whitespace collapsed, cut after '.', '!' or '?' (closing quotes kept
// with the sentence); those of min_words..max_words words; `count` of them taken evenly spaced
// through the book (deterministic: the same text gives the same set).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "shrink/io/llm_import.h"

namespace shrink::eval {

std::vector<std::string> pick_sentences(std::string_view text, int64_t count, int64_t min_words = 6,
                                        int64_t max_words = 60);

// The model's output for one sentence (tokens (1, T) -> (1, D)), tokens capped at the model's
// positions.
std::vector<float> embed_sentence(io::LanguageModel& model, const std::string& sentence);

struct EmbeddingSimilarity {
  int64_t sentences = 0, tokens = 0;
  double mean_cosine = 0, min_cosine = 0;
  double seconds_model = 0, seconds_reference = 0;
};
EmbeddingSimilarity compare_embeddings(io::LanguageModel& model, io::LanguageModel& reference,
                                       const std::vector<std::string>& sentences);

}  // namespace shrink::eval
