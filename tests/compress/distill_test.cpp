// Distillation: the combined loss's gradient, the teacher cache, and mismatched teachers.
#include <gtest/gtest.h>

#include "nn/nn_test_support.h"
#include "shrink/compress/distill.h"
#include "shrink/nn/builder.h"
#include "shrink/train/losses.h"

namespace shrink::testing {
namespace {

nn::Graph classifier(int64_t classes, uint64_t seed) {
  nn::GraphBuilder b(seed);
  int x = b.input("x", Shape{-1, 6});
  b.output(b.linear("fc", x, 6, classes));
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

}  // namespace
}  // namespace shrink::testing
