// Distillation loss with an optional per-example cache of teacher logits.
#include "shrink/compress/distill.h"

#include <fmt/format.h>

#include "shrink/nn/execute.h"
#include "shrink/train/losses.h"

namespace shrink::compress {

Tensor TeacherOutputs::logits(const train::Batch& batch) {
  bool all_cached = cache_ && !batch.indices.empty();
  for (size_t i = 0; all_cached && i < batch.indices.size(); ++i) all_cached = rows_.count(batch.indices[i]) > 0;
  if (!all_cached) {
    Tensor out = nn::forward(teacher_, batch.inputs).at(0).contiguous();
    if (cache_ && !batch.indices.empty()) {
      int64_t per = out.numel() / batch.size;
      for (int64_t i = 0; i < batch.size; ++i)
        rows_[batch.indices[size_t(i)]] = std::vector<float>(out.data<float>() + i * per, out.data<float>() + (i + 1) * per);
    }
    return out;
  }
  // Rebuild the batch from the cache; every example's logits have the same shape.
  const std::vector<float>& first = rows_.at(batch.indices[0]);
  Tensor out = Tensor::empty(Shape{batch.size, int64_t(first.size())}, DType::f32);
  for (int64_t i = 0; i < batch.size; ++i) {
    const std::vector<float>& row = rows_.at(batch.indices[size_t(i)]);
    std::copy(row.begin(), row.end(), out.mutable_data<float>() + i * int64_t(first.size()));
  }
  return out;
}

train::LossFunction distillation_loss(std::shared_ptr<TeacherOutputs> teacher, const DistillConfig& config) {
  if (!(config.alpha >= 0 && config.alpha <= 1)) throw UsageError("alpha must be in [0, 1]", "--alpha");
  if (!(config.temperature > 0)) throw UsageError("the temperature must be positive", "--temperature");
  return [teacher, config](const std::vector<Tensor>& outputs, const train::Batch& batch) {
    const Tensor& student = outputs.at(0);
    Tensor teacher_logits = teacher->logits(batch);
    // Cached rows come back flattened per example; the student's shape restores them.
    if (teacher_logits.numel() == student.numel() && teacher_logits.shape() != student.shape() &&
        teacher_logits.shape()[teacher_logits.rank() - 1] % student.shape()[student.rank() - 1] == 0)
      teacher_logits = teacher_logits.reshape(student.shape());
    if (teacher_logits.shape() != student.shape())
      throw UsageError(fmt::format("teacher outputs {} but the student {}", teacher_logits.shape().to_string(),
                                   student.shape().to_string()),
                       "distill", "teacher and student must predict the same classes");
    train::LossResult hard = train::cross_entropy(student, batch.targets);
    train::LossResult soft = train::kl_divergence(student, teacher_logits, config.temperature);
    train::LossResult total = hard;
    total.loss = config.alpha * hard.loss + (1 - config.alpha) * soft.loss;
    float* g = total.grad.mutable_data<float>();
    const float* s = soft.grad.data<float>();
    for (int64_t i = 0; i < total.grad.numel(); ++i) g[i] = float(config.alpha) * g[i] + float(1 - config.alpha) * s[i];
    return total;
  };
}

}  // namespace shrink::compress
