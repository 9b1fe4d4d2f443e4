// Knowledge distillation (Hinton, Vinyals & Dean 2015): the student learns from
// alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T)).
// The teacher's logits can be computed once per training example and cached.
#pragma once
#include <map>
#include <memory>

#include "shrink/nn/graph.h"
#include "shrink/train/trainer.h"

namespace shrink::compress {

struct DistillConfig {
  double alpha = 0.5;        // weight of the label term, in [0, 1]
  double temperature = 4.0;  // > 0
  bool cache_teacher = true;  // keep each example's teacher logits after its first batch
};

// Teacher logits per example, computed on demand in eval mode (and cached when asked).
class TeacherOutputs {
 public:
  TeacherOutputs(nn::Graph& teacher, bool cache) : teacher_(teacher), cache_(cache) {}
  // Logits for the batch (shape of the teacher's output for these inputs).
  Tensor logits(const train::Batch& batch);
  int64_t cached() const { return int64_t(rows_.size()); }

 private:
  nn::Graph& teacher_;
  bool cache_;
  std::map<int64_t, std::vector<float>> rows_;  // example index -> its logits
};

// The loss function for train::fit. UsageError when the teacher's and the student's outputs
// disagree in shape (e.g. different numbers of classes), alpha outside [0, 1] or T <= 0.
train::LossFunction distillation_loss(std::shared_ptr<TeacherOutputs> teacher, const DistillConfig& config);

}  // namespace shrink::compress
