// Fake quantization: forward equals dequantize(quantize(x)); the backward pass passes gradients
// inside the grid and zeroes them where values were clamped; switches and state round trip.
#include <gtest/gtest.h>

#include <cstring>

#include "shrink/core/rng.h"
#include "shrink/quant/fake_quant.h"

namespace shrink {
namespace {

Tensor values(std::vector<float> v) {
  Tensor t = Tensor::empty({int64_t(v.size())}, DType::f32);
  std::memcpy(t.mutable_raw_data(), v.data(), v.size() * 4);
  return t;
}

QuantScheme uint8_affine() {
  QuantScheme s;
  s.is_signed = false;
  s.mapping = QuantMapping::affine;
  return s;
}

TEST(FakeQuantize, ForwardRoundsToTheGridAndBackwardClips) {
  const QuantScheme scheme = uint8_affine();
  const QParams qp = qparams_from_range(values({-1.f}).reshape(Shape({})), values({1.f}).reshape(Shape({})), scheme, {});
  const Tensor x = values({-3.f, -1.f, 0.1234f, 0.5f, 1.f, 2.f});
  const Tensor y = fake_quantize(x, qp, scheme);
  const float step = 2.f / 255.f;
  EXPECT_NEAR(y.data<float>()[0], -1.f, step);  // clamped to the range
  EXPECT_NEAR(y.data<float>()[2], 0.1234f, step / 2 + 1e-6f);
  EXPECT_NEAR(y.data<float>()[5], 1.f, step);
  const Tensor grad = fake_quantize_backward(x, values({1, 2, 3, 4, 5, 6}), qp, scheme);
  const float expected[] = {0, 2, 3, 4, 5, 0};  // clamped inputs get no gradient
  for (int i = 0; i < 6; ++i) EXPECT_EQ(grad.data<float>()[i], expected[i]) << i;
}

// The STE is not the derivative of the staircase (which is 0 almost everywhere); what it must
// match is the derivative of the clamp it stands for: finite differences of clamp(x, low, high)
// away from the two corners.
TEST(FakeQuantize, BackwardIsTheDerivativeOfTheClampItStandsFor) {
  QuantScheme scheme;  // int8 symmetric
  const QParams qp = qparams_from_range(values({-2.f}).reshape(Shape({})), values({2.f}).reshape(Shape({})), scheme, {});
  const float low = (float(scheme.quant_min()) - 0.5f) * qp.scale.data<float>()[0];
  const float high = (float(scheme.quant_max()) + 0.5f) * qp.scale.data<float>()[0];
  Rng rng(4);
  for (int i = 0; i < 1000; ++i) {
    const float x = rng.uniform(-4.f, 4.f);
    if (std::fabs(x - low) < 1e-3f || std::fabs(x - high) < 1e-3f) continue;
    const float h = 1e-4f;
    auto clamp = [&](float v) { return std::clamp(v, low, high); };
    const float numeric = (clamp(x + h) - clamp(x - h)) / (2 * h);
    const float ste = fake_quantize_backward(values({x}), values({1.f}), qp, scheme).data<float>()[0];
    EXPECT_NEAR(ste, numeric, 1e-3f) << "x = " << x;
  }
}

TEST(FakeQuantize, SwitchesAndStateRoundTrip) {
  ObserverConfig observer;
  observer.kind = ObserverKind::moving_average;
  FakeQuantize fq(uint8_affine(), observer);
  EXPECT_THROW(fq.qparams(), UsageError);
  const Tensor x = values({-1.f, 0.3f, 2.f});
  const Tensor y = fq.forward(x);
  EXPECT_NE(y.data<float>()[1], 0.3f);  // rounded
  fq.enable_observer(false);
  fq.forward(values({-100.f, 100.f}));  // not observed: the range stays
  EXPECT_NEAR(fq.observer().range(fq.scheme()).high.data<float>()[0], 2.f, 1e-6f);
  fq.enable_fake_quant(false);
  EXPECT_EQ(fq.forward(x).data<float>()[1], 0.3f);  // identity
  EXPECT_EQ(fq.backward(x, values({1, 1, 1})).data<float>()[0], 1.f);
  fq.enable_fake_quant(true);
  const FakeQuantize restored = FakeQuantize::from_json(nlohmann::json::parse(fq.to_json().dump()));
  EXPECT_FALSE(restored.observer_enabled());
  EXPECT_TRUE(restored.fake_quant_enabled());
  EXPECT_EQ(restored.qparams().scale.data<float>()[0], fq.qparams().scale.data<float>()[0]);
  EXPECT_EQ(restored.qparams().zero.data<float>()[0], fq.qparams().zero.data<float>()[0]);
}

TEST(FakeQuantize, PerChannelWeights) {
  ObserverConfig observer;
  observer.granularity.kind = Granularity::per_channel;
  observer.granularity.axis = 0;
  QuantScheme scheme;
  scheme.bits = 4;
  FakeQuantize fq(scheme, observer);
  Tensor w = Tensor::empty({2, 3}, DType::f32);
  const float data[] = {0.1f, -0.2f, 0.3f, 10.f, -20.f, 30.f};
  std::memcpy(w.mutable_raw_data(), data, sizeof data);
  const Tensor y = fq.forward(w);
  EXPECT_EQ(fq.qparams().scale.numel(), 2);
  EXPECT_NEAR(y.data<float>()[0], 0.1f, 0.3f / 7);  // row 0 keeps its own, fine scale
  EXPECT_NEAR(y.data<float>()[5], 30.f, 30.f / 7);
}

}  // namespace
}  // namespace shrink
