// Datasets by the names the CLI uses: "fashion-mnist"; "austen" (characters) and "austen-bpe"
// (byte-level BPE of 1024 tokens trained on the five training novels, deterministic), loaded from the asset cache or a folder,
// with their normalisation and the metric that judges models on them.
#pragma once
#include <memory>
#include <string>

#include "shrink/train/trainer.h"

namespace shrink::train {

struct TaskData {
  std::string name;
  std::unique_ptr<DataSource> train, eval;  // train is null when not asked for
  std::string metric;  // "accuracy" (images) or "ppl" (per-character perplexity, text)
  int64_t vocabulary = 0;  // text: embedding rows the model needs
  double unigram_cross_entropy = 0;  // text: nats per token of a unigram model (baseline)
  double characters_per_token = 1;   // text: held-out bytes / held-out tokens
};

inline constexpr int64_t kDefaultContext = 128;

// folder empty: <asset cache>/<name>. Throws UsageError for unknown names, IoError/FormatError
// for missing or bad files (with the fetch command as the hint).
TaskData load_task_data(const std::string& name, const std::string& folder = "", bool with_train = true,
                        int64_t context = kDefaultContext);

}  // namespace shrink::train
