// Fake quantization (forward) and the clipped straight-through estimator (backward).
#include "shrink/quant/fake_quant.h"

#include <cmath>

namespace shrink {
Tensor fake_quantize(const Tensor& x, const QParams& qparams, const QuantScheme& scheme) {
  return dequantize(quantize(x, qparams, scheme), qparams);
}

Tensor fake_quantize_backward(const Tensor& x, const Tensor& grad_y, const QParams& qparams, const QuantScheme& scheme) {
  if (grad_y.shape() != x.shape())
    throw UsageError("gradient of shape " + grad_y.shape().to_string() + " for an input of shape " + x.shape().to_string());
  Tensor grad = grad_y.dtype() == DType::f32 ? grad_y.clone() : grad_y.to(DType::f32);
  const Tensor mask = grid_mask(x, qparams, scheme);
  for (int64_t i = 0; i < grad.numel(); ++i) grad.mutable_data<float>()[i] *= mask.data<float>()[i];
  return grad;
}

FakeQuantize::FakeQuantize(QuantScheme scheme, ObserverConfig observer)
    : scheme_(scheme), observer_(Observer::create(observer)) {
  scheme_.validate();
}

Tensor FakeQuantize::forward(const Tensor& x) {
  if (observing_) {
    observer_->observe(x);
    stale_ = true;
  }
  if (!fake_quantizing_) return x;
  return fake_quantize(x, qparams(), scheme_);
}

Tensor FakeQuantize::backward(const Tensor& x, const Tensor& grad_y) const {
  if (!fake_quantizing_) return grad_y;
  return fake_quantize_backward(x, grad_y, qparams(), scheme_);
}

const QParams& FakeQuantize::qparams() const {
  if (stale_) {
    qparams_ = observer_->qparams(scheme_);
    stale_ = false;
  }
  return qparams_;
}

nlohmann::json FakeQuantize::to_json() const {
  return {{"scheme", {{"bits", scheme_.bits}, {"signed", scheme_.is_signed},
                      {"symmetric", scheme_.mapping == QuantMapping::symmetric},
                      {"convention", int(scheme_.convention)}, {"reduce_range", scheme_.reduce_range},
                      {"narrow_range", scheme_.narrow_range}}},
          {"observer", observer_->to_json()}, {"observing", observing_}, {"fake_quantizing", fake_quantizing_}};
}

FakeQuantize FakeQuantize::from_json(const nlohmann::json& state) {
  try {
    QuantScheme scheme;
    const auto& s = state.at("scheme");
    scheme.bits = s.at("bits");
    scheme.is_signed = s.at("signed");
    scheme.mapping = s.at("symmetric").get<bool>() ? QuantMapping::symmetric : QuantMapping::affine;
    const int convention = s.at("convention");
    if (convention < 0 || convention > 2) throw FormatError("unknown quantization convention " + std::to_string(convention));
    scheme.convention = QParamsConvention(convention);
    scheme.reduce_range = s.at("reduce_range");
    scheme.narrow_range = s.at("narrow_range");
    auto observer = Observer::from_json(state.at("observer"));
    FakeQuantize fq(scheme, observer->config());
    fq.observer_ = std::move(observer);
    fq.observing_ = state.at("observing");
    fq.fake_quantizing_ = state.at("fake_quantizing");
    return fq;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(std::string("malformed fake-quantize state: ") + e.what());
  }
}

}  // namespace shrink
