// Losses with their gradients in the prediction: each returns the mean loss over the batch and
// d(loss)/d(prediction), ready to hand to nn::backward.
#pragma once
#include <vector>

#include "shrink/core/tensor.h"

namespace shrink::train {

struct LossResult {
  double loss = 0;
  Tensor grad;          // same shape as the prediction
  int64_t correct = 0;  // classification: rows whose arg-max is the target
  int64_t count = 0;    // rows that counted (ignore_index excluded)
  // Losses that also read the graph's further outputs (distillation's hidden-state term) put
  // their gradients here: entry i belongs to output i + 1; missing or undefined ones are zero.
  std::vector<Tensor> output_grads;
};

// logits (..., C), targets (...) of i32/i64 class ids; rows whose target is ignore_index are
// skipped. Mean over the counted rows. label_smoothing as in PyTorch.
LossResult cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing = 0.0,
                         int64_t ignore_index = -100);

// Hinton et al. 2015: T^2 * KL(softmax(teacher/T) || softmax(student/T)), averaged over rows
// (PyTorch's reduction="batchmean" times T^2). Gradient in the student logits.
LossResult kl_divergence(const Tensor& student_logits, const Tensor& teacher_logits, double temperature);

// Mean of squared differences over all elements.
LossResult mean_squared_error(const Tensor& prediction, const Tensor& target);

}  // namespace shrink::train
