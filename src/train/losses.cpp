// Cross-entropy, temperature-scaled KL divergence and MSE, each with its gradient.
#include "shrink/train/losses.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace shrink::train {
namespace {

int64_t class_count(const Tensor& logits) {
  if (logits.rank() < 1 || logits.dtype() != DType::f32)
    throw UsageError("logits must be f32 with a class axis, got " + logits.shape().to_string());
  return logits.shape()[logits.rank() - 1];
}

int64_t target_at(const Tensor& targets, int64_t i) {
  switch (targets.dtype()) {
    case DType::i32: return targets.data<int32_t>()[i];
    case DType::i64: return targets.data<int64_t>()[i];
    case DType::u8: return targets.data<uint8_t>()[i];
    default: throw UsageError("targets must be integer class ids");
  }
}

// Row-wise log-softmax of x / temperature into out (double for the sums).
void log_softmax(const float* x, int64_t c, double temperature, std::vector<double>& out) {
  double top = *std::max_element(x, x + c) / temperature, sum = 0;
  for (int64_t j = 0; j < c; ++j) sum += std::exp(x[j] / temperature - top);
  double log_sum = std::log(sum) + top;
  for (int64_t j = 0; j < c; ++j) out[size_t(j)] = x[j] / temperature - log_sum;
}

}  // namespace

LossResult cross_entropy(const Tensor& logits_in, const Tensor& targets_in, double label_smoothing,
                         int64_t ignore_index) {
  int64_t c = class_count(logits_in), rows = logits_in.numel() / std::max<int64_t>(c, 1);
  const Tensor logits = logits_in.contiguous(), targets = targets_in.contiguous();
  if (targets.numel() != rows)
    throw UsageError(fmt::format("{} targets for {} rows of logits", targets.numel(), rows));
  LossResult result;
  result.grad = Tensor::empty(logits.shape(), DType::f32);
  std::vector<double> logp(static_cast<size_t>(c));
  std::vector<int64_t> counted;
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t target = target_at(targets, r);
    if (target == ignore_index) continue;
    if (target < 0 || target >= c)
      throw UsageError(fmt::format("target {} is outside the {} classes", target, c));
    const float* x = logits.data<float>() + r * c;
    log_softmax(x, c, 1.0, logp);
    double mean_logp = 0;
    for (double v : logp) mean_logp += v;
    mean_logp /= double(c);
    total += -(1 - label_smoothing) * logp[size_t(target)] - label_smoothing * mean_logp;
    if (std::max_element(x, x + c) - x == target) ++result.correct;
    counted.push_back(r);
  }
  result.count = int64_t(counted.size());
  if (result.count == 0) return result;
  result.loss = total / double(result.count);
  float* g = result.grad.mutable_data<float>();
  double scale = 1.0 / double(result.count);
  for (int64_t r : counted) {
    log_softmax(logits.data<float>() + r * c, c, 1.0, logp);
    int64_t target = target_at(targets, r);
    for (int64_t j = 0; j < c; ++j) {
      double want = (j == target ? 1 - label_smoothing : 0) + label_smoothing / double(c);
      g[r * c + j] = float((std::exp(logp[size_t(j)]) - want) * scale);
    }
  }
  return result;
}

LossResult kl_divergence(const Tensor& student_in, const Tensor& teacher_in, double temperature) {
  if (student_in.shape() != teacher_in.shape())
    throw UsageError(fmt::format("student logits {} and teacher logits {} differ",
                                 student_in.shape().to_string(), teacher_in.shape().to_string()));
  if (!(temperature > 0)) throw UsageError("the distillation temperature must be positive");
  int64_t c = class_count(student_in), rows = student_in.numel() / std::max<int64_t>(c, 1);
  const Tensor student = student_in.contiguous(), teacher = teacher_in.contiguous();
  LossResult result;
  result.grad = Tensor::empty(student.shape(), DType::f32);
  result.count = rows;
  std::vector<double> logp_s(static_cast<size_t>(c)), logp_t(static_cast<size_t>(c));
  double total = 0, t2 = temperature * temperature;
  for (int64_t r = 0; r < rows; ++r) {
    log_softmax(student.data<float>() + r * c, c, temperature, logp_s);
    log_softmax(teacher.data<float>() + r * c, c, temperature, logp_t);
    const float* s = student.data<float>() + r * c;
    if (std::max_element(s, s + c) - s ==
        std::max_element(teacher.data<float>() + r * c, teacher.data<float>() + (r + 1) * c) -
            (teacher.data<float>() + r * c))
      ++result.correct;
    for (int64_t j = 0; j < c; ++j) {
      double pt = std::exp(logp_t[size_t(j)]), ps = std::exp(logp_s[size_t(j)]);
      total += pt * (logp_t[size_t(j)] - logp_s[size_t(j)]);
      // d/ds_j of T^2 * KL / rows = T * (p_s - p_t) / rows
      result.grad.mutable_data<float>()[r * c + j] = float(temperature * (ps - pt) / double(rows));
    }
  }
  result.loss = rows ? t2 * total / double(rows) : 0.0;
  return result;
}

LossResult mean_squared_error(const Tensor& prediction_in, const Tensor& target_in) {
  if (prediction_in.shape() != target_in.shape() || prediction_in.dtype() != DType::f32 ||
      target_in.dtype() != DType::f32)
    throw UsageError(fmt::format("MSE needs two f32 tensors of one shape, got {} and {}",
                                 prediction_in.shape().to_string(), target_in.shape().to_string()));
  const Tensor p = prediction_in.contiguous(), t = target_in.contiguous();
  LossResult result;
  result.grad = Tensor::empty(p.shape(), DType::f32);
  result.count = p.numel();
  double total = 0, n = double(std::max<int64_t>(p.numel(), 1));
  for (int64_t i = 0; i < p.numel(); ++i) {
    double d = double(p.data<float>()[i]) - t.data<float>()[i];
    total += d * d;
    result.grad.mutable_data<float>()[i] = float(2 * d / n);
  }
  result.loss = total / n;
  return result;
}

}  // namespace shrink::train
