// Named datasets for training and evaluation.
#include "shrink/train/task_data.h"

#include <cmath>

#include "shrink/io/bpe.h"
#include "shrink/io/datasets.h"

namespace shrink::train {
namespace {

constexpr int kBpeVocabulary = 1024;

// Cross-entropy (nats per token) on the held-out ids of the training ids' frequencies, with
// add-one smoothing so that unseen symbols cost a finite amount.
double unigram_cross_entropy(const std::vector<int32_t>& train, const std::vector<int32_t>& eval, int vocabulary) {
  std::vector<double> counts(static_cast<size_t>(vocabulary), 1.0);
  for (int32_t id : train) counts[size_t(id)] += 1;
  double total = double(train.size()) + vocabulary, nats = 0;
  for (int32_t id : eval) nats -= std::log(counts[size_t(id)] / total);
  return eval.empty() ? 0.0 : nats / double(eval.size());
}

}  // namespace

TaskData load_task_data(const std::string& name, const std::string& folder, bool with_train,
                        int64_t context) {
  std::string dir = folder.empty() ? asset_cache_dir() + "/" + name : folder;
  TaskData task;
  task.name = name;
  if (name == "fashion-mnist") {
    // Mean and standard deviation of the training pixels / 255 (computed over all 60,000).
    constexpr float kMean = 0.2860f, kStd = 0.3530f;
    ImageDataset train, test;
    try {
      if (with_train) train = load_idx_images(dir, "train");
      test = load_idx_images(dir, "t10k");
    } catch (const IoError& e) {
      throw IoError(e.problem(), e.location(), "fetch it with: python3 tools/fetch_assets.py");
    }
    if (with_train)
      task.train = std::make_unique<ImageClassificationData>(train.images, train.labels, kMean, kStd);
    task.eval = std::make_unique<ImageClassificationData>(test.images, test.labels, kMean, kStd);
    task.metric = "accuracy";
    return task;
  }
  if (name == "austen" || name == "austen-bpe") {
    AustenSplit text;
    try {
      text = load_austen(folder.empty() ? asset_cache_dir() + "/austen" : folder);
    } catch (const IoError& e) {
      throw IoError(e.problem(), e.location(), "fetch it with: python3 tools/fetch_assets.py");
    }
    std::vector<int32_t> train_ids, eval_ids;
    if (name == "austen") {
      CharVocabulary vocabulary(text.train);
      train_ids = vocabulary.encode(text.train);
      eval_ids = vocabulary.encode(text.eval);
      task.vocabulary = vocabulary.size();
    } else {
      BpeTokenizer tokenizer = BpeTokenizer::train(text.train, kBpeVocabulary);
      train_ids = tokenizer.encode(text.train);
      eval_ids = tokenizer.encode(text.eval);
      task.vocabulary = tokenizer.size();
    }
    task.unigram_cross_entropy = unigram_cross_entropy(train_ids, eval_ids, int(task.vocabulary));
    task.characters_per_token = eval_ids.empty() ? 1.0 : double(text.eval.size()) / double(eval_ids.size());
    if (with_train) task.train = std::make_unique<TokenWindows>(std::move(train_ids), context);
    task.eval = std::make_unique<TokenWindows>(std::move(eval_ids), context);
    task.metric = "ppl";
    return task;
  }
  throw UsageError("unknown dataset '" + name + "'", "--data", "choose fashion-mnist, austen or austen-bpe");
}

}  // namespace shrink::train
