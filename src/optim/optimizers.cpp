// SGD (momentum, L2 weight decay, Nesterov) and AdamW, both as PyTorch defines them; the
// per-parameter state is keyed by the parameter's dotted name.
#include <fmt/format.h>

#include <cmath>

#include "shrink/core/parallel.h"
#include "shrink/train/optim.h"

namespace shrink::train {
namespace {

template <class Body> void for_each_element(Tensor& t, Body body) {
  parallel_for(0, t.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) body(i);
  });
}

Tensor& state_for(std::map<std::string, Tensor>& state, const std::string& name, const Tensor& like) {
  Tensor& t = state[name];
  if (!t.defined()) t = Tensor::empty(like.shape(), DType::f32);
  return t;
}

class Sgd final : public Optimizer {
 public:
  explicit Sgd(const SgdConfig& config) : config_(config) {}
  void step(nn::Graph& graph, double lr) override {
    for (auto& [name, p] : graph.named_params(true)) {
      if (!p->grad.defined()) continue;
      float* w = p->value.mutable_data<float>();
      const float* g = p->grad.data<float>();
      float* v = config_.momentum ? state_for(velocity_, name, p->value).mutable_data<float>() : nullptr;
      float momentum = float(config_.momentum), decay = float(config_.weight_decay), rate = float(lr);
      bool first = !started_.count(name);
      started_[name] = true;
      for_each_element(p->value, [&](int64_t i) {
        float d = g[i] + decay * w[i];
        if (v) {
          v[i] = first ? d : momentum * v[i] + d;
          d = config_.nesterov ? d + momentum * v[i] : v[i];
        }
        w[i] -= rate * d;
      });
    }
  }
  std::string describe() const override {
    return fmt::format("SGD(momentum={}, weight_decay={}, nesterov={})", config_.momentum,
                       config_.weight_decay, config_.nesterov);
  }

 private:
  SgdConfig config_;
  std::map<std::string, Tensor> velocity_;
  std::map<std::string, bool> started_;
};

class AdamW final : public Optimizer {
 public:
  explicit AdamW(const AdamWConfig& config) : config_(config) {}
  void step(nn::Graph& graph, double lr) override {
    ++steps_;
    double correction1 = 1 - std::pow(config_.beta1, double(steps_));
    double correction2 = 1 - std::pow(config_.beta2, double(steps_));
    for (auto& [name, p] : graph.named_params(true)) {
      if (!p->grad.defined()) continue;
      float* w = p->value.mutable_data<float>();
      const float* g = p->grad.data<float>();
      float* m = state_for(first_, name, p->value).mutable_data<float>();
      float* v = state_for(second_, name, p->value).mutable_data<float>();
      bool decay = config_.decay_vectors || p->value.rank() >= 2;
      float shrink = decay ? float(1 - lr * config_.weight_decay) : 1.f;
      float b1 = float(config_.beta1), b2 = float(config_.beta2);
      float step_size = float(lr / correction1), root2 = float(std::sqrt(correction2));
      float eps = float(config_.eps);
      for_each_element(p->value, [&](int64_t i) {
        w[i] *= shrink;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        w[i] -= step_size * m[i] / (std::sqrt(v[i]) / root2 + eps);
      });
    }
  }
  std::string describe() const override {
    return fmt::format("AdamW(betas=({}, {}), eps={}, weight_decay={})", config_.beta1,
                       config_.beta2, config_.eps, config_.weight_decay);
  }

 private:
  AdamWConfig config_;
  int64_t steps_ = 0;
  std::map<std::string, Tensor> first_, second_;
};

}  // namespace

std::unique_ptr<Optimizer> make_sgd(const SgdConfig& config) { return std::make_unique<Sgd>(config); }
std::unique_ptr<Optimizer> make_adamw(const AdamWConfig& config) {
  return std::make_unique<AdamW>(config);
}

double Schedule::learning_rate(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) return base_lr * double(step + 1) / double(warmup_steps);
  int64_t after = step - warmup_steps;
  switch (kind) {
    case Kind::constant: return base_lr;
    case Kind::step: return base_lr * std::pow(gamma, double(after / std::max<int64_t>(step_size, 1)));
    case Kind::cosine: {
      int64_t span = std::max<int64_t>(total_steps - warmup_steps, 1);
      double progress = std::min(1.0, double(after) / double(span));
      return min_lr + 0.5 * (base_lr - min_lr) * (1 + std::cos(M_PI * progress));
    }
  }
  return base_lr;
}

double clip_grad_norm(nn::Graph& graph, double max_norm) {
  double sum = 0;
  for (auto& [name, p] : graph.named_params(true)) {
    if (!p->grad.defined()) continue;
    const float* g = p->grad.data<float>();
    for (int64_t i = 0; i < p->grad.numel(); ++i) sum += double(g[i]) * g[i];
  }
  double norm = std::sqrt(sum);
  if (max_norm > 0 && norm > max_norm) {
    float scale = float(max_norm / (norm + 1e-6));
    for (auto& named : graph.named_params(true))
      if (Tensor& grad = named.second->grad; grad.defined())
        for_each_element(grad, [&](int64_t i) { grad.mutable_data<float>()[i] *= scale; });
  }
  return norm;
}

}  // namespace shrink::train
