// Losses (finite differences), optimizers (hand-computed steps), schedules, clipping, and the
// trainer: it learns, it is deterministic given a seed, and its hooks run.
#include "nn/nn_test_support.h"
#include "shrink/nn/builder.h"
#include "shrink/train/losses.h"
#include "shrink/train/optim.h"
#include "shrink/train/trainer.h"
#include "core/memory_budget.h"

namespace shrink::testing {
namespace {

// Finite differences of a loss in its prediction.
template <class LossOf> void expect_loss_gradient(Tensor prediction, LossOf loss_of) {
  train::LossResult result = loss_of(prediction);
  for (int64_t i = 0; i < prediction.numel(); ++i) {
    float* v = prediction.mutable_data<float>() + i;
    float saved = *v;
    *v = saved + 1e-2f;
    double up = loss_of(prediction).loss;
    *v = saved - 1e-2f;
    double down = loss_of(prediction).loss;
    *v = saved;
    EXPECT_NEAR(result.grad.data<float>()[i], (up - down) / 2e-2, 2e-3) << "element " << i;
  }
}

TEST(Losses, GradientsMatchFiniteDifferences) {
  Rng rng(1);
  Tensor targets = Tensor::empty(Shape{4}, DType::i64);
  int64_t ids[] = {2, 0, -100, 4};  // one ignored row
  std::copy(ids, ids + 4, targets.mutable_data<int64_t>());
  expect_loss_gradient(random_tensor(Shape{4, 5}, rng, -2, 2),
                       [&](const Tensor& p) { return train::cross_entropy(p, targets, 0.05); });
  Tensor teacher = random_tensor(Shape{3, 6}, rng, -2, 2);
  expect_loss_gradient(random_tensor(Shape{3, 6}, rng, -2, 2),
                       [&](const Tensor& p) { return train::kl_divergence(p, teacher, 2.5); });
  Tensor target = random_tensor(Shape{2, 3}, rng);
  expect_loss_gradient(random_tensor(Shape{2, 3}, rng),
                       [&](const Tensor& p) { return train::mean_squared_error(p, target); });
}

TEST(Losses, CountsIgnoresAndRejects) {
  Tensor logits = Tensor::empty(Shape{3, 2}, DType::f32);
  float values[] = {1, 0, 0, 1, 5, -5};
  std::copy(values, values + 6, logits.mutable_data<float>());
  Tensor targets = Tensor::empty(Shape{3}, DType::i32);
  int32_t ids[] = {0, 0, -100};
  std::copy(ids, ids + 3, targets.mutable_data<int32_t>());
  auto r = train::cross_entropy(logits, targets);
  EXPECT_EQ(r.count, 2);
  EXPECT_EQ(r.correct, 1);
  EXPECT_NEAR(r.loss, (std::log(1 + std::exp(-1.0)) + std::log(1 + std::exp(1.0))) / 2, 1e-6);
  targets.mutable_data<int32_t>()[1] = 2;
  EXPECT_THROW(train::cross_entropy(logits, targets), UsageError);
  EXPECT_THROW(train::kl_divergence(logits, logits, 0.0), UsageError);
}

// One parameter w = [1, -2] with gradient [0.5, 0.25].
nn::Graph one_param_graph() {
  nn::GraphBuilder b(0);
  int x = b.input("x", Shape{-1, 2});
  b.output(b.linear("fc", x, 2, 1, false));
  nn::Graph g = b.take();
  nn::Param& w = g.node("fc").param("weight");
  w.value.mutable_data<float>()[0] = 1.f;
  w.value.mutable_data<float>()[1] = -2.f;
  return g;
}
void set_grad(nn::Graph& g, float a, float b) {
  nn::Param& w = g.node("fc").param("weight");
  w.grad = Tensor::empty(w.value.shape(), DType::f32);
  w.grad.mutable_data<float>()[0] = a;
  w.grad.mutable_data<float>()[1] = b;
}
float weight(nn::Graph& g, int i) { return g.node("fc").param("weight").value.data<float>()[i]; }

TEST(Optimizers, SgdMomentumAndWeightDecayFollowPyTorch) {
  nn::Graph g = one_param_graph();
  auto sgd = train::make_sgd({0.9, 0.1, false});
  set_grad(g, 0.5f, 0.25f);
  sgd->step(g, 0.1);  // d = g + 0.1 w = [0.6, 0.05]; v = d; w -= 0.1 v
  EXPECT_NEAR(weight(g, 0), 1 - 0.06, 1e-6);
  EXPECT_NEAR(weight(g, 1), -2 - 0.005, 1e-6);
  set_grad(g, 0.5f, 0.25f);
  sgd->step(g, 0.1);  // d = g + 0.1 w; v = 0.9 v + d
  double d0 = 0.5 + 0.1 * 0.94, v0 = 0.9 * 0.6 + d0;
  EXPECT_NEAR(weight(g, 0), 0.94 - 0.1 * v0, 1e-6);
}

TEST(Optimizers, AdamWFirstStepsFollowTheFormula) {
  nn::Graph g = one_param_graph();
  train::AdamWConfig config;
  config.weight_decay = 0.1;
  auto adamw = train::make_adamw(config);
  set_grad(g, 0.5f, -0.25f);
  adamw->step(g, 0.01);  // first step: m_hat = g, v_hat = g^2 -> update = lr * sign(g) (eps aside)
  EXPECT_NEAR(weight(g, 0), 1 * (1 - 0.001) - 0.01, 1e-6);
  EXPECT_NEAR(weight(g, 1), -2 * (1 - 0.001) + 0.01, 1e-6);
}

TEST(Schedules, WarmupCosineAndStep) {
  train::Schedule s;
  s.base_lr = 1.0;
  s.warmup_steps = 10;
  s.total_steps = 110;
  EXPECT_NEAR(s.learning_rate(0), 0.1, 1e-12);
  EXPECT_NEAR(s.learning_rate(9), 1.0, 1e-12);
  EXPECT_NEAR(s.learning_rate(10), 1.0, 1e-12);
  EXPECT_NEAR(s.learning_rate(60), 0.5, 1e-12);
  EXPECT_NEAR(s.learning_rate(110), 0.0, 1e-12);
  s.kind = train::Schedule::Kind::step;
  s.warmup_steps = 0;
  s.step_size = 5;
  s.gamma = 0.5;
  EXPECT_NEAR(s.learning_rate(4), 1.0, 1e-12);
  EXPECT_NEAR(s.learning_rate(5), 0.5, 1e-12);
  EXPECT_NEAR(s.learning_rate(12), 0.25, 1e-12);
}

TEST(Clipping, ScalesTheGlobalNorm) {
  nn::Graph g = one_param_graph();
  set_grad(g, 3.f, 4.f);
  EXPECT_NEAR(train::clip_grad_norm(g, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(g.node("fc").param("weight").grad.data<float>()[0], 0.6, 1e-5);
  EXPECT_NEAR(train::clip_grad_norm(g, 10.0), 1.0, 1e-5);  // under the limit: unchanged
}

// Two Gaussian blobs in 2-D as images of 1x1x2... kept as a tiny DataSource.
class Blobs final : public train::DataSource {
 public:
  explicit Blobs(int64_t n) : x_(Tensor::empty(Shape{n, 2}, DType::f32)), y_(Tensor::empty(Shape{n}, DType::i64)) {
    Rng rng(11);
    for (int64_t i = 0; i < n; ++i) {
      int64_t label = i % 2;
      y_.mutable_data<int64_t>()[i] = label;
      x_.mutable_data<float>()[2 * i] = rng.normal(label ? 1.5f : -1.5f, 0.7f);
      x_.mutable_data<float>()[2 * i + 1] = rng.normal(label ? -1.f : 1.f, 0.7f);
    }
  }
  int64_t size() const override { return y_.shape()[0]; }
  train::Batch gather(const std::vector<int64_t>& indices) const override {
    train::Batch b;
    b.size = int64_t(indices.size());
    Tensor x = Tensor::empty(Shape{b.size, 2}, DType::f32);
    b.targets = Tensor::empty(Shape{b.size}, DType::i64);
    for (int64_t i = 0; i < b.size; ++i) {
      int64_t k = indices[size_t(i)];
      x.mutable_data<float>()[2 * i] = x_.data<float>()[2 * k];
      x.mutable_data<float>()[2 * i + 1] = x_.data<float>()[2 * k + 1];
      b.targets.mutable_data<int64_t>()[i] = y_.data<int64_t>()[k];
    }
    b.inputs = {x};
    return b;
  }

 private:
  Tensor x_, y_;
};

nn::Graph blob_classifier(uint64_t seed) {
  nn::GraphBuilder b(seed);
  int x = b.input("x", Shape{-1, 2});
  x = b.op("relu", "ReLU", {b.linear("fc1", x, 2, 16)});
  x = b.op("drop", "Dropout", {x}, {{"p", 0.1}});
  b.output(b.linear("fc2", x, 16, 2));
  return b.take();
}

train::TrainResult train_blobs(nn::Graph& g, int* steps_seen, int* epochs_seen, bool check_memory = true) {
  Blobs data(400);
  auto opt = train::make_adamw({});
  train::Schedule schedule;
  schedule.base_lr = 0.02;
  schedule.total_steps = 3 * 13;
  train::TrainConfig config;
  config.epochs = 3;
  config.batch_size = 32;
  config.seed = 5;
  config.quiet = true;
  config.max_grad_norm = 5.0;
  config.check_memory = check_memory;
  train::TrainerHooks hooks;
  hooks.after_step = [&](const train::StepInfo&) { ++*steps_seen; };
  hooks.end_of_epoch = [&](train::EpochSummary&) { ++*epochs_seen; };
  auto loss = [](const std::vector<Tensor>& out, const train::Batch& b) { return train::cross_entropy(out[0], b.targets); };
  return train::fit(g, *opt, schedule, data, loss, config, hooks);
}

TEST(Trainer, LearnsRunsHooksAndIsDeterministic) {
  nn::Graph a = blob_classifier(3), b = blob_classifier(3);
  int steps = 0, epochs = 0;
  auto result = train_blobs(a, &steps, &epochs);
  ASSERT_EQ(result.epochs.size(), 3u);
  EXPECT_EQ(steps, 3 * 13);
  EXPECT_EQ(epochs, 3);
  EXPECT_GT(result.epochs.back().train_accuracy, 0.9);
  EXPECT_LT(result.epochs.back().train_loss, result.epochs.front().train_loss);
  int s2 = 0, e2 = 0;
  train_blobs(b, &s2, &e2);
  auto pa = a.named_params(), pb = b.named_params();
  for (size_t i = 0; i < pa.size(); ++i)
    for (int64_t j = 0; j < pa[i].second->value.numel(); ++j)
      ASSERT_EQ(pa[i].second->value.data<float>()[j], pb[i].second->value.data<float>()[j]) << pa[i].first;
}

// A batch norm's running statistics and the dropout stream: the memory check's two probe steps
// before training must leave no trace in what training computes.
nn::Graph blob_classifier_with_batch_norm(uint64_t seed) {
  nn::GraphBuilder b(seed);
  int x = b.input("x", Shape{-1, 2});
  x = b.batch_norm("bn", b.linear("fc1", x, 2, 16), 16, false);
  x = b.op("drop", "Dropout", {b.op("relu", "ReLU", {x})}, {{"p", 0.1}});
  b.output(b.linear("fc2", x, 16, 2));
  return b.take();
}

TEST(Trainer, TheMemoryCheckLeavesTrainingUnchanged) {
  nn::Graph checked = blob_classifier_with_batch_norm(4), unchecked = blob_classifier_with_batch_norm(4);
  int steps = 0, epochs = 0;
  train_blobs(checked, &steps, &epochs, true);
  train_blobs(unchecked, &steps, &epochs, false);
  auto a = checked.named_params(), b = unchecked.named_params();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)  // running_mean and running_var included
    for (int64_t j = 0; j < a[i].second->value.numel(); ++j)
      ASSERT_EQ(a[i].second->value.data<float>()[j], b[i].second->value.data<float>()[j]) << a[i].first;
}

// A pretended machine with little left: a batch whose step would not fit is refused before the
// first step, naming a batch that fits; with room enough it passes.
TEST(Trainer, ABatchThatCannotFitIsRefusedBeforeTheFirstStep) {
  nn::GraphBuilder builder(2);
  int x = builder.input("x", Shape{-1, 2});
  x = builder.op("relu", "ReLU", {builder.linear("fc1", x, 2, 8192)});
  builder.output(builder.linear("fc2", x, 8192, 2));
  nn::Graph g = builder.take();
  Blobs data(4000);
  auto loss = [](const std::vector<Tensor>& out, const train::Batch& b) { return train::cross_entropy(out[0], b.targets); };
  // 8192 x 4 bytes x a few copies (output, ReLU, their gradients) an example: some 130 kB, so
  // 4,000 need ~0.5 GB.
  memory_budget::set_available_for_testing(size_t(256) << 20);
  try {
    train::refuse_batches_that_do_not_fit(g, data, loss, 4000);
    ADD_FAILURE() << "a batch of 4,000 passed with 256 MB left";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("a batch of 4000 needs about"), std::string::npos) << what;
    EXPECT_NE(what.find("or fewer fits"), std::string::npos) << what;
  }
  EXPECT_NO_THROW(train::refuse_batches_that_do_not_fit(g, data, loss, 100));
  memory_budget::set_available_for_testing(size_t(8) << 30);
  EXPECT_NO_THROW(train::refuse_batches_that_do_not_fit(g, data, loss, 4000));
  memory_budget::set_available_for_testing(0);  // the real machine again
}

}  // namespace
}  // namespace shrink::testing
