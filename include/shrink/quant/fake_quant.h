// Fake quantization for quantization-aware training: the forward pass rounds x to the grid the
// converted model will use, y = dequantize(quantize(x)); the backward pass is the straight-through
// estimator with clipping, dL/dx = dL/dy where x falls inside the grid and 0 where it was clamped
// (PyTorch's rule: x_q = round(x / scale) + zero before clamping lies within [qmin, qmax]).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>

#include "shrink/quant/observer.h"
#include "shrink/quant/scheme.h"

namespace shrink {

Tensor fake_quantize(const Tensor& x, const QParams& qparams, const QuantScheme& scheme);
Tensor fake_quantize_backward(const Tensor& x, const Tensor& grad_y, const QParams& qparams, const QuantScheme& scheme);

// An observer and a scheme with the two switches QAT schedules use: observing (updates the range)
// and fake-quantizing (otherwise the forward pass is the identity).
class FakeQuantize {
 public:
  FakeQuantize(QuantScheme scheme, ObserverConfig observer);
  static FakeQuantize from_json(const nlohmann::json& state);

  Tensor forward(const Tensor& x);  // observes if enabled, then fake-quantizes if enabled
  Tensor backward(const Tensor& x, const Tensor& grad_y) const;

  void enable_observer(bool on) { observing_ = on; }
  void enable_fake_quant(bool on) { fake_quantizing_ = on; }
  bool observer_enabled() const { return observing_; }
  bool fake_quant_enabled() const { return fake_quantizing_; }
  const QParams& qparams() const;  // UsageError before anything was observed
  const QuantScheme& scheme() const { return scheme_; }
  const Observer& observer() const { return *observer_; }
  nlohmann::json to_json() const;

 private:
  QuantScheme scheme_;
  std::unique_ptr<Observer> observer_;
  bool observing_ = true, fake_quantizing_ = true;
  mutable QParams qparams_;
  mutable bool stale_ = true;
};

}  // namespace shrink
