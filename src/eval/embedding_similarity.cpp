// Sentence-embedding fidelity (see embedding_similarity.h).
#include "shrink/eval/embedding_similarity.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

#include "shrink/core/error.h"
#include "shrink/nn/execute.h"

namespace shrink::eval {

std::vector<std::string> pick_sentences(std::string_view text, int64_t count, int64_t min_words, int64_t max_words) {
  if (count <= 0) throw UsageError("the number of sentences must be positive", "--sentences");
  std::vector<std::string> all;
  std::string current;
  int64_t words = 0;
  bool in_word = false;
  auto finish = [&] {
    if (words >= min_words && words <= max_words) all.push_back(current);
    current.clear(), words = 0, in_word = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool space = c == ' ' || c == '\n' || c == '\r' || c == '\t';
    if (space) {
      if (!current.empty() && current.back() != ' ') current += ' ';
      in_word = false;
      continue;
    }
    if (!in_word) ++words, in_word = true;
    current += c;
    if (c == '.' || c == '!' || c == '?') {
      while (i + 1 < text.size() && (text[i + 1] == '"' || text[i + 1] == '\'')) current += text[++i];
      finish();
    }
  }
  if (int64_t(all.size()) < count)
    throw UsageError(fmt::format("the text has {} sentences of {}..{} words, fewer than the {} asked for", all.size(),
                                 min_words, max_words, count), "--sentences");
  std::vector<std::string> picked;
  for (int64_t i = 0; i < count; ++i) picked.push_back(all[size_t(i * int64_t(all.size()) / count)]);
  return picked;
}

std::vector<float> embed_sentence(io::LanguageModel& model, const std::string& sentence) {
  std::vector<int32_t> ids = model.tokenizer->encode(sentence);
  if (model.config.context > 0 && int64_t(ids.size()) > model.config.context) {
    int32_t last = ids.back();  // keep [SEP]
    ids.resize(size_t(model.config.context));
    ids.back() = last;
  }
  Tensor tokens = Tensor::uninitialized(Shape{1, int64_t(ids.size())}, DType::i64);
  for (size_t i = 0; i < ids.size(); ++i) tokens.mutable_data<int64_t>()[i] = ids[i];
  Tensor y = nn::forward(model.graph, std::span<const Tensor>(&tokens, 1)).at(0).contiguous();
  if (y.rank() != 2 || y.shape()[0] != 1)
    throw UsageError(fmt::format("the model's output {} is not one embedding per sentence", y.shape().to_string()),
                     "", "embedding similarity needs an encoder (e.g. MiniLM)");
  return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

EmbeddingSimilarity compare_embeddings(io::LanguageModel& model, io::LanguageModel& reference,
                                       const std::vector<std::string>& sentences) {
  EmbeddingSimilarity r;
  r.min_cosine = 1;
  using clock = std::chrono::steady_clock;
  for (const std::string& s : sentences) {
    auto t0 = clock::now();
    std::vector<float> a = embed_sentence(model, s);
    auto t1 = clock::now();
    std::vector<float> b = embed_sentence(reference, s);
    auto t2 = clock::now();
    r.seconds_model += std::chrono::duration<double>(t1 - t0).count();
    r.seconds_reference += std::chrono::duration<double>(t2 - t1).count();
    if (a.size() != b.size()) throw UsageError("the model and the reference give embeddings of different sizes");
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < a.size(); ++i) dot += double(a[i]) * b[i], na += double(a[i]) * a[i], nb += double(b[i]) * b[i];
    double cosine = na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0;
    r.mean_cosine += cosine;
    r.min_cosine = std::min(r.min_cosine, cosine);
    r.tokens += int64_t(model.tokenizer->encode(s).size());
    ++r.sentences;
  }
  if (r.sentences) r.mean_cosine /= double(r.sentences);
  return r;
}

}  // namespace shrink::eval
