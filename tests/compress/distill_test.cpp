// Distillation: the combined loss's gradient, the teacher cache, and mismatched teachers.
#include <gtest/gtest.h>

#include "nn/nn_test_support.h"
#include "shrink/compress/distill.h"
#include "shrink/nn/builder.h"
#include "shrink/nn/execute.h"
#include "shrink/train/losses.h"
#include "shrink/train/optim.h"
#include "shrink/train/trainer.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace shrink::testing {
namespace {

nn::Graph classifier(int64_t classes, uint64_t seed) {
  nn::GraphBuilder b(seed);
  int x = b.input("x", Shape{-1, 6});
  b.output(b.linear("fc", x, 6, classes));
  return b.take();
}

// x (6) -> hidden (width) -> ReLU -> Dropout -> classes: the hint reads the ReLU's output.
nn::Graph hidden_classifier(int64_t width, int64_t classes, uint64_t seed) {
  nn::GraphBuilder b(seed);
  int x = b.input("x", Shape{-1, 6});
  x = b.op("hidden.relu", "ReLU", {b.linear("hidden", x, 6, width)});
  x = b.op("drop", "Dropout", {x}, {{"p", 0.1}});
  b.output(b.linear("head", x, width, classes));
  return b.take();
}

train::Batch batch_of(int64_t n, uint64_t seed) {
  Rng rng(seed);
  train::Batch b;
  b.size = n;
  b.inputs = {random_tensor(Shape{n, 6}, rng)};
  b.targets = Tensor::empty(Shape{n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) {
    b.targets.mutable_data<int64_t>()[i] = i % 3;
    b.indices.push_back(100 + i);
  }
  return b;
}

TEST(Distill, CombinedLossGradientMatchesFiniteDifferences) {
  nn::Graph teacher = classifier(3, 1);
  compress::DistillConfig config;
  config.alpha = 0.3;
  config.temperature = 2.5;
  auto loss = compress::distillation_loss(std::make_shared<compress::TeacherOutputs>(teacher, false), config);
  train::Batch batch = batch_of(4, 2);
  Rng rng(3);
  Tensor student = random_tensor(Shape{4, 3}, rng, -2, 2);
  train::LossResult r = loss({student}, batch);
  for (int64_t i = 0; i < student.numel(); ++i) {
    float saved = student.data<float>()[i];
    student.mutable_data<float>()[i] = saved + 1e-2f;
    double up = loss({student}, batch).loss;
    student.mutable_data<float>()[i] = saved - 1e-2f;
    double down = loss({student}, batch).loss;
    student.mutable_data<float>()[i] = saved;
    EXPECT_NEAR(r.grad.data<float>()[i], (up - down) / 2e-2, 2e-3) << i;
  }
  // alpha = 1 is plain cross-entropy.
  config.alpha = 1.0;
  auto hard = compress::distillation_loss(std::make_shared<compress::TeacherOutputs>(teacher, false), config);
  EXPECT_NEAR(hard({student}, batch).loss, train::cross_entropy(student, batch.targets).loss, 1e-9);
}

TEST(Distill, CachedTeacherOutputsEqualFreshOnes) {
  nn::Graph teacher = classifier(3, 4);
  auto cached = std::make_shared<compress::TeacherOutputs>(teacher, true);
  train::Batch batch = batch_of(5, 6);
  Tensor first = cached->logits(batch);
  EXPECT_EQ(cached->cached(), 5);
  // Change the teacher: the cache must still answer with what it computed the first time.
  teacher.node("fc").param("weight").value.mutable_data<float>()[0] += 1.f;
  Tensor again = cached->logits(batch);
  for (int64_t i = 0; i < first.numel(); ++i) EXPECT_EQ(again.data<float>()[i], first.data<float>()[i]);
}

TEST(Distill, RejectsMismatchedTeachersAndBadSettings) {
  nn::Graph teacher = classifier(5, 1);
  compress::DistillConfig config;
  auto loss = compress::distillation_loss(std::make_shared<compress::TeacherOutputs>(teacher, false), config);
  Rng rng(1);
  EXPECT_THROW(loss({random_tensor(Shape{4, 3}, rng)}, batch_of(4, 2)), UsageError);
  config.alpha = 1.5;
  EXPECT_THROW(compress::distillation_loss(std::make_shared<compress::TeacherOutputs>(teacher, false), config), UsageError);
  config.alpha = 0.5;
  config.temperature = 0;
  EXPECT_THROW(compress::distillation_loss(std::make_shared<compress::TeacherOutputs>(teacher, false), config), UsageError);
}

TEST(Distill, HiddenStateTermGradientMatchesFiniteDifferences) {
  nn::Graph student = hidden_classifier(4, 3, 1), teacher = hidden_classifier(7, 3, 2);
  compress::DistillConfig config;
  config.alpha = 0.4;
  config.temperature = 2;
  config.feature_weight = 0.7;
  compress::attach_feature_hint(student, teacher, config, 0);
  auto loss = compress::distillation_loss(std::make_shared<compress::TeacherOutputs>(teacher, false), config);
  train::Batch batch = batch_of(5, 3);
  Rng rng(4);
  std::vector<Tensor> outputs = {random_tensor(Shape{5, 3}, rng, -2, 2), random_tensor(Shape{5, 7}, rng)};
  train::LossResult r = loss(outputs, batch);
  ASSERT_EQ(r.output_grads.size(), 1u);
  Tensor& hint = outputs[1];
  for (int64_t i = 0; i < hint.numel(); ++i) {
    float saved = hint.data<float>()[i];
    hint.mutable_data<float>()[i] = saved + 1e-2f;
    double up = loss(outputs, batch).loss;
    hint.mutable_data<float>()[i] = saved - 1e-2f;
    double down = loss(outputs, batch).loss;
    hint.mutable_data<float>()[i] = saved;
    EXPECT_NEAR(r.output_grads[0].data<float>()[i], (up - down) / 2e-2, 2e-3) << i;
  }
  // The term adds weight * MSE to the logit terms.
  Tensor teacher_hidden = nn::forward(teacher, batch.inputs).at(1);
  compress::DistillConfig logits_only = config;
  logits_only.feature_weight = 0;
  auto plain = compress::distillation_loss(std::make_shared<compress::TeacherOutputs>(teacher, false), logits_only);
  EXPECT_NEAR(r.loss, plain(outputs, batch).loss + 0.7 * train::mean_squared_error(outputs[1], teacher_hidden).loss, 1e-6);
}

TEST(Distill, HintProjectionIsAttachedForTrainingAndDetachedForSaving) {
  nn::Graph student = hidden_classifier(4, 3, 1), teacher = hidden_classifier(7, 3, 2);
  size_t nodes = student.nodes().size();
  compress::DistillConfig config;
  config.feature_weight = 1;
  compress::attach_feature_hint(student, teacher, config, 0);
  ASSERT_EQ(student.outputs().size(), 2u);
  ASSERT_EQ(teacher.outputs().size(), 2u);
  EXPECT_EQ(student.nodes().size(), nodes + 1);
  EXPECT_EQ(student.node("distill.projection").param("weight").value.shape(), (Shape{7, 4}));
  // The teacher's second output is its ReLU (past the dropout), the student's the projection.
  EXPECT_EQ(teacher.values()[size_t(teacher.outputs()[1])].name, "hidden.relu");
  train::Batch batch = batch_of(2, 5);
  EXPECT_EQ(nn::forward(student, batch.inputs).at(1).shape(), (Shape{2, 7}));
  compress::detach_feature_hint(student);
  EXPECT_EQ(student.outputs().size(), 1u);
  EXPECT_EQ(student.nodes().size(), nodes);
  EXPECT_EQ(student.node_index("distill.projection"), -1);
  // Equal widths need no projection: the hidden state itself becomes the output.
  nn::Graph twin = hidden_classifier(7, 3, 3), teacher2 = hidden_classifier(7, 3, 2);
  compress::attach_feature_hint(twin, teacher2, config, 0);
  EXPECT_EQ(twin.values()[size_t(twin.outputs()[1])].name, "hidden.relu");
  EXPECT_EQ(twin.nodes().size(), nodes);
}

TEST(Distill, TrainingPullsTheStudentsHiddenStateTowardsTheTeachers) {
  nn::Graph student = hidden_classifier(5, 3, 1), teacher = hidden_classifier(8, 3, 2);
  compress::DistillConfig config;
  config.alpha = 1;  // labels only, plus the hint: its pull comes from output_grads alone
  config.feature_weight = 10;
  compress::attach_feature_hint(student, teacher, config, 0);
  auto teacher_outputs = std::make_shared<compress::TeacherOutputs>(teacher, true);
  auto loss = compress::distillation_loss(teacher_outputs, config);
  struct Source final : train::DataSource {
    int64_t size() const override { return 64; }
    train::Batch gather(const std::vector<int64_t>& indices) const override {
      train::Batch b = batch_of(int64_t(indices.size()), 9 + uint64_t(indices[0]));
      return b;
    }
  } data;
  auto hint_error = [&] {
    train::Batch b = batch_of(16, 77);
    return train::mean_squared_error(nn::forward(student, b.inputs).at(1), nn::forward(teacher, b.inputs).at(1)).loss;
  };
  double before = hint_error();
  const Tensor projection_before = student.node("distill.projection").param("weight").value.contiguous().clone();
  auto adam = train::make_adamw(train::AdamWConfig{});
  train::Schedule schedule;
  schedule.kind = train::Schedule::Kind::constant;
  schedule.base_lr = 1e-2;
  train::TrainConfig fit_config;
  fit_config.epochs = 20;
  fit_config.batch_size = 16;
  fit_config.quiet = true;
  train::fit(student, *adam, schedule, data, loss, fit_config);
  double after = hint_error();
  EXPECT_LT(after, 0.5 * before) << before << " -> " << after;
  EXPECT_NE(student.node("distill.projection").param("weight").value.data<float>()[0], projection_before.data<float>()[0]);
}

TEST(Distill, TeacherOutputsSurviveADiskRoundTrip) {
  nn::Graph student = hidden_classifier(4, 3, 1), teacher = hidden_classifier(7, 3, 2);
  compress::DistillConfig config;
  config.feature_weight = 1;
  compress::attach_feature_hint(student, teacher, config, 0);
  auto first = std::make_shared<compress::TeacherOutputs>(teacher, true);
  train::Batch batch = batch_of(5, 6);
  std::vector<Tensor> fresh = first->outputs(batch);
  std::string path = (std::filesystem::temp_directory_path() / "shrink_teacher_cache_test.bin").string();
  uint64_t fingerprint = compress::teacher_fingerprint(teacher, "toy 5");
  first->save(path, fingerprint);
  // Another fingerprint (another teacher or dataset) is not used.
  compress::TeacherOutputs other(teacher, true);
  EXPECT_FALSE(other.load(path, compress::teacher_fingerprint(teacher, "toy 6")));
  EXPECT_EQ(other.cached(), 0);
  compress::TeacherOutputs second(teacher, true);
  ASSERT_TRUE(second.load(path, fingerprint));
  EXPECT_EQ(second.cached(), 5);
  std::vector<Tensor> loaded = second.outputs(batch);
  EXPECT_EQ(second.teacher_runs(), 0);  // answered from the file
  ASSERT_EQ(loaded.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    ASSERT_EQ(loaded[k].shape(), fresh[k].shape());
    for (int64_t i = 0; i < fresh[k].numel(); ++i) EXPECT_EQ(loaded[k].data<float>()[i], fresh[k].data<float>()[i]);
  }
  // Damaged files: truncated, and a count that lies.
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [&](const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), std::streamsize(content.size()));
  };
  write(bytes.substr(0, bytes.size() - 3));
  EXPECT_THROW(second.load(path, fingerprint), FormatError);
  std::string lying = bytes;
  size_t count_at = 8 + 8 + 4 + 2 * (4 + 8);  // magic, fingerprint, K, two rank-1 shapes
  lying[count_at + 7] = char(0x7f);
  write(lying);
  EXPECT_THROW(second.load(path, fingerprint), FormatError);
  write("SHRKTCH2" + bytes.substr(8));
  EXPECT_THROW(second.load(path, fingerprint), FormatError);
  EXPECT_EQ(second.cached(), 5);  // a failed load leaves the cache as it was
  std::filesystem::remove(path);
  compress::TeacherOutputs empty(teacher, true);
  empty.save(path, fingerprint);
  EXPECT_FALSE(std::filesystem::exists(path)) << "nothing cached, nothing written";
}

TEST(Distill, RejectsBadHiddenStateSettings) {
  nn::Graph student = hidden_classifier(4, 3, 1), teacher = hidden_classifier(7, 3, 2);
  compress::DistillConfig config;
  config.feature_weight = -1;
  EXPECT_THROW(config.validate(), UsageError);
  config.feature_weight = 1;
  config.student_feature = "no.such.value";
  EXPECT_THROW(compress::attach_feature_hint(student, teacher, config, 0), UsageError);
  EXPECT_EQ(student.outputs().size(), 1u);
  EXPECT_EQ(teacher.outputs().size(), 1u);
  // A 4-D image against a 2-D hidden state cannot be matched.
  nn::GraphBuilder b(1);
  int x = b.input("image", Shape{-1, 1, 4, 4});
  int conv = b.conv2d("conv", x, 1, 2, 3, 1, 1);
  b.output(b.linear("head", b.op("flatten", "Flatten", {conv}), 32, 3));
  nn::Graph cnn = b.take();
  config.student_feature = "conv";
  EXPECT_THROW(compress::attach_feature_hint(cnn, teacher, config, 0), UsageError);
  EXPECT_EQ(teacher.outputs().size(), 1u);
  // The hint on but the graphs not wired for it.
  config.student_feature.clear();
  auto loss = compress::distillation_loss(std::make_shared<compress::TeacherOutputs>(teacher, false), config);
  Rng rng(1);
  EXPECT_THROW(loss({random_tensor(Shape{4, 3}, rng)}, batch_of(4, 2)), UsageError);
}

}  // namespace
}  // namespace shrink::testing
