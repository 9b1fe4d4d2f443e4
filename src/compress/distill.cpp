// The distillation loss and the wiring of its hidden-state term into teacher and student.
#include "shrink/compress/distill.h"

#include <fmt/format.h>

#include <cmath>

#include "shrink/core/rng.h"
#include "shrink/train/losses.h"

namespace shrink::compress {
namespace {

constexpr const char* kProjection = "distill.projection";

int value_named(const nn::Graph& graph, const std::string& name) {
  for (size_t i = 0; i < graph.values().size(); ++i)
    if (graph.values()[i].name == name) return int(i);
  throw UsageError(fmt::format("the model has no value named '{}'", name), "--hint",
                   "values are named after the node that computes them (shrink inspect lists the nodes)");
}

// A teacher whose output groups the leading dimensions differently from the student's (N*T, V vs
// N, T, V; same element count, same last dimension) is read in the student's shape.
Tensor shaped_like(Tensor teacher, const Tensor& student, const char* what) {
  if (teacher.numel() == student.numel() && teacher.shape() != student.shape() &&
      teacher.shape()[teacher.rank() - 1] == student.shape()[student.rank() - 1])
    teacher = teacher.reshape(student.shape());
  if (teacher.shape() != student.shape())
    throw UsageError(fmt::format("teacher {} {} but the student's {}", what, teacher.shape().to_string(),
                                 student.shape().to_string()),
                     "distill", "teacher and student must predict the same classes");
  return teacher;
}

}  // namespace

void DistillConfig::validate() const {
  if (!(alpha >= 0 && alpha <= 1)) throw UsageError("alpha must be in [0, 1]", "--alpha");
  if (!(temperature > 0)) throw UsageError("the temperature must be positive", "--temperature");
  if (!(feature_weight >= 0 && std::isfinite(feature_weight)))
    throw UsageError("the hidden-state weight must be a finite number >= 0", "--hint-weight");
}

int feature_value(const nn::Graph& graph, const std::string& name) {
  if (!name.empty()) return value_named(graph, name);
  int producer = graph.outputs().empty() ? -1 : graph.values()[size_t(graph.outputs()[0])].producer;
  if (producer < 0 || graph.nodes()[size_t(producer)].kind != "Linear")
    throw UsageError("the model's output is not computed by a Linear layer, so its last hidden state is ambiguous",
                     "--hint", "name the value to match with --hint-student / --hint-teacher");
  int value = graph.nodes()[size_t(producer)].inputs[0];
  // Dropout is off in the teacher but on in the student: match what both see.
  while (graph.values()[size_t(value)].producer >= 0 &&
         graph.nodes()[size_t(graph.values()[size_t(value)].producer)].kind == "Dropout")
    value = graph.nodes()[size_t(graph.values()[size_t(value)].producer)].inputs[0];
  return value;
}

void attach_feature_hint(nn::Graph& student, nn::Graph& teacher, const DistillConfig& config, uint64_t seed) {
  if (student.outputs().size() != 1 || teacher.outputs().size() != 1)
    throw UsageError("the hidden-state term needs single-output teacher and student models", "--hint-weight");
  int s = feature_value(student, config.student_feature), t = feature_value(teacher, config.teacher_feature);
  const Shape& s_shape = student.values()[size_t(s)].info.shape;
  const Shape& t_shape = teacher.values()[size_t(t)].info.shape;
  if (s_shape.rank() != t_shape.rank() || s_shape.rank() < 2)
    throw UsageError(fmt::format("the student's hidden state {} and the teacher's {} cannot be matched",
                                 s_shape.to_string(), t_shape.to_string()),
                     "--hint", "pick values with the same layout (features last)");
  int64_t s_width = s_shape[s_shape.rank() - 1], t_width = t_shape[t_shape.rank() - 1];
  if (s_width <= 0 || t_width <= 0)
    throw UsageError("the hidden states' feature dimensions must be known", "--hint");
  teacher.mark_output(t);
  if (s_width == t_width) {
    student.mark_output(s);
    return;
  }
  // PyTorch's Linear initialisation, U(-1/sqrt(in), 1/sqrt(in)).
  Rng rng(seed ^ 0x5deece66dULL);
  float bound = float(1.0 / std::sqrt(double(s_width)));
  nn::Node projection{kProjection, "Linear", {{"in_features", s_width}, {"out_features", t_width}}, {s}, {}, {}};
  Tensor weight = Tensor::empty(Shape{t_width, s_width}, DType::f32);
  Tensor bias = Tensor::empty(Shape{t_width}, DType::f32);
  for (int64_t i = 0; i < weight.numel(); ++i) weight.mutable_data<float>()[i] = rng.uniform(-bound, bound);
  for (int64_t i = 0; i < bias.numel(); ++i) bias.mutable_data<float>()[i] = rng.uniform(-bound, bound);
  projection.params = {{"weight", weight, {}, true}, {"bias", bias, {}, true}};
  student.mark_output(student.add(std::move(projection)));
}

void detach_feature_hint(nn::Graph& student) {
  if (student.outputs().size() < 2) return;
  student.remove_output(student.outputs().back());
}

train::LossFunction distillation_loss(std::shared_ptr<TeacherOutputs> teacher, const DistillConfig& config) {
  config.validate();
  return [teacher, config](const std::vector<Tensor>& outputs, const train::Batch& batch) {
    const Tensor& student = outputs.at(0);
    std::vector<Tensor> teacher_outputs = teacher->outputs(batch);
    Tensor teacher_logits = shaped_like(teacher_outputs.at(0), student, "outputs");
    train::LossResult hard = train::cross_entropy(student, batch.targets);
    train::LossResult soft = train::kl_divergence(student, teacher_logits, config.temperature);
    train::LossResult total = hard;
    total.loss = config.alpha * hard.loss + (1 - config.alpha) * soft.loss;
    float* g = total.grad.mutable_data<float>();
    const float* s = soft.grad.data<float>();
    for (int64_t i = 0; i < total.grad.numel(); ++i) g[i] = float(config.alpha) * g[i] + float(1 - config.alpha) * s[i];
    if (config.feature_weight > 0) {
      if (outputs.size() < 2 || teacher_outputs.size() < 2)
        throw UsageError("the hidden-state term is on but the models were not wired for it", "distill",
                         "call attach_feature_hint before training");
      Tensor target = shaped_like(teacher_outputs[1], outputs[1], "hidden state");
      train::LossResult hint = train::mean_squared_error(outputs[1], target);
      total.loss += config.feature_weight * hint.loss;
      float* h = hint.grad.mutable_data<float>();
      for (int64_t i = 0; i < hint.grad.numel(); ++i) h[i] *= float(config.feature_weight);
      total.output_grads = {hint.grad};
    }
    return total;
  };
}

}  // namespace shrink::compress
