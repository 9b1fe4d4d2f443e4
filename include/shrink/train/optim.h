// Optimizers over a graph's trainable parameters (SGD with momentum, AdamW), learning-rate
// schedules (warm-up then cosine or step decay) and gradient-norm clipping.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "shrink/nn/graph.h"

namespace shrink::train {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Updates every trainable parameter that has a gradient, at the given learning rate.
  virtual void step(nn::Graph& graph, double learning_rate) = 0;
  virtual std::string describe() const = 0;
};

struct SgdConfig {
  double momentum = 0.9;
  double weight_decay = 0.0;  // L2 added to the gradient (PyTorch SGD semantics)
  bool nesterov = false;
};
struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.01;    // decoupled (Loshchilov & Hutter 2019)
  bool decay_vectors = false;    // when false, biases and norm scales (rank < 2) are not decayed
};

std::unique_ptr<Optimizer> make_sgd(const SgdConfig& config);
std::unique_ptr<Optimizer> make_adamw(const AdamWConfig& config);

struct Schedule {
  enum class Kind { constant, cosine, step } kind = Kind::cosine;
  double base_lr = 1e-3;
  double min_lr = 0.0;          // cosine floor
  int64_t warmup_steps = 0;     // linear warm-up from 0
  int64_t total_steps = 1;      // cosine horizon
  int64_t step_size = 1;        // step decay: multiply by gamma every step_size steps
  double gamma = 0.1;
  double learning_rate(int64_t step) const;
};

// Scales all gradients so their global L2 norm is at most max_norm; returns the norm before.
double clip_grad_norm(nn::Graph& graph, double max_norm);

}  // namespace shrink::train
