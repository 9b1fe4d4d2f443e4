// Held-out evaluation by cross-entropy (classifiers and language models).
#include "shrink/eval/evaluate.h"

#include <chrono>
#include <numeric>

#include "shrink/nn/execute.h"
#include "shrink/train/losses.h"

namespace shrink::eval {

CrossEntropyReport evaluate_cross_entropy(nn::Graph& graph, const train::DataSource& data, int64_t batch_size) {
  auto start = std::chrono::steady_clock::now();
  CrossEntropyReport report;
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < data.size(); begin += batch_size) {
    std::vector<int64_t> indices(static_cast<size_t>(std::min(batch_size, data.size() - begin)));
    std::iota(indices.begin(), indices.end(), begin);
    train::Batch batch = data.gather(indices);
    auto outputs = nn::forward(graph, batch.inputs);
    train::LossResult loss = train::cross_entropy(outputs.at(0), batch.targets);
    loss_sum += loss.loss * double(loss.count);
    correct += loss.correct;
    report.count += loss.count;
  }
  if (report.count) {
    report.loss = loss_sum / double(report.count);
    report.accuracy = double(correct) / double(report.count);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace shrink::eval
