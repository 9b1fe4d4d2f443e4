// Knowledge distillation (Hinton, Vinyals & Dean 2015): the student learns from
// alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T)),
// optionally plus a hidden-state term beta * MSE(P h_student, h_teacher) (the "hint" of FitNets,
// Romero et al. 2015) where P is a learned Linear projection when the two widths differ.
// The teacher's outputs can be computed once per training example, cached in memory and kept on
// disk between runs.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "shrink/nn/graph.h"
#include "shrink/train/trainer.h"

namespace shrink::compress {

struct DistillConfig {
  double alpha = 0.5;        // weight of the label term, in [0, 1]
  double temperature = 4.0;  // > 0
  bool cache_teacher = true;  // keep each example's teacher outputs after its first batch
  // Hidden-state term: weight (0: off) and the values it compares, by name; an empty name means
  // the input of the model's final Linear layer (past any Dropout), i.e. its last hidden state.
  double feature_weight = 0;
  std::string student_feature, teacher_feature;
  void validate() const;  // UsageError for alpha outside [0, 1], T <= 0, a negative feature weight
};

// The value the hidden-state term reads in `graph`: the one named, or the final Linear's input.
// UsageError when the name is unknown or the graph does not end in a Linear layer.
int feature_value(const nn::Graph& graph, const std::string& name);

// Wires the hidden-state term into both graphs: the teacher's feature becomes its second output,
// and the student's feature, through a new Linear "distill.projection" when the widths differ,
// becomes the student's second output (the projection trains with the student). UsageError when
// the two features do not have the same rank or a graph already has more than one output.
void attach_feature_hint(nn::Graph& student, nn::Graph& teacher, const DistillConfig& config, uint64_t seed);
// Removes the training-only output (and projection) again: the student as it will be saved.
void detach_feature_hint(nn::Graph& student);

// The teacher's outputs (logits first, then the hint feature when one is attached) per example,
// computed on demand in eval mode and cached when asked.
class TeacherOutputs {
 public:
  TeacherOutputs(nn::Graph& teacher, bool cache) : teacher_(teacher), cache_(cache) {}
  std::vector<Tensor> outputs(const train::Batch& batch);
  Tensor logits(const train::Batch& batch) { return outputs(batch).at(0); }
  int64_t cached() const { return int64_t(rows_.size()); }
  int64_t teacher_runs() const { return teacher_runs_; }  // forward passes so far

  // The cache on disk. `fingerprint` identifies the teacher, its outputs and the data (see
  // teacher_fingerprint); load() returns false, leaving the cache as it was, when the file was
  // written for another one, and throws FormatError when the file is damaged. save() writes
  // atomically, and nothing when nothing is cached.
  void save(const std::string& path, uint64_t fingerprint) const;
  bool load(const std::string& path, uint64_t fingerprint);

 private:
  nn::Graph& teacher_;
  bool cache_;
  int64_t teacher_runs_ = 0;
  std::vector<Shape> per_example_;              // each output's shape without the batch dimension
  std::map<int64_t, std::vector<float>> rows_;  // example index -> its outputs, concatenated
};

// A 64-bit FNV-1a hash of the teacher's parameters, the names of its outputs and a description of
// the data (dataset, context, size): a disk cache is reused only for the same triple.
uint64_t teacher_fingerprint(const nn::Graph& teacher, const std::string& data_description);

// The loss function for train::fit. UsageError when the teacher's and the student's outputs
// disagree in shape (e.g. different numbers of classes) or the settings are invalid.
train::LossFunction distillation_loss(std::shared_ptr<TeacherOutputs> teacher, const DistillConfig& config);

}  // namespace shrink::compress
