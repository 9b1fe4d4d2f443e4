// Model quality on held-out data. Classifiers and language models are both judged by the
// cross-entropy of their outputs against the targets: accuracy for images, perplexity and bits
// per character for text.
#pragma once
#include <cmath>

#include "shrink/nn/graph.h"
#include "shrink/train/trainer.h"

namespace shrink::eval {

struct CrossEntropyReport {
  double loss = 0;      // mean cross-entropy per counted row (image or token), in nats
  double accuracy = 0;  // fraction of arg-max hits (next-character accuracy for text)
  int64_t count = 0;    // rows counted
  double seconds = 0;
  double perplexity() const { return std::exp(loss); }
  double bits() const { return loss / std::log(2.0); }  // bits per row (per character for text)
};

// Runs the graph in eval mode (no tape) over the whole source in order.
CrossEntropyReport evaluate_cross_entropy(nn::Graph& graph, const train::DataSource& data, int64_t batch_size = 500);

}  // namespace shrink::eval
