// Observers: their ranges on known data, exact merging (chunks give the same answer), the JSON
// round trip, the searching observers beating plain min-max on data with outliers, and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "shrink/core/rng.h"
#include "shrink/quant/observer.h"

namespace shrink {
namespace {

Tensor gaussian_with_outliers(Shape shape, uint64_t seed, int outliers = 3) {
  Rng rng(seed);
  Tensor t = Tensor::empty(shape, DType::f32);
  float* d = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = rng.normal(0.2f, 1.f);
  for (int i = 0; i < outliers; ++i) d[rng.below(uint64_t(t.numel()))] = (i % 2 ? -1 : 1) * rng.uniform(15.f, 30.f);
  return t;
}

ObserverConfig config(ObserverKind kind, Granularity::Kind granularity = Granularity::per_tensor, int axis = 0,
                      int64_t group = 0) {
  ObserverConfig c;
  c.kind = kind;
  c.granularity.kind = granularity;
  c.granularity.axis = axis;
  c.granularity.group_size = group;
  return c;
}

QuantScheme int8_affine() {
  QuantScheme s;
  s.is_signed = false;
  s.mapping = QuantMapping::affine;
  return s;
}

const ObserverKind kAllKinds[] = {ObserverKind::minmax, ObserverKind::moving_average, ObserverKind::histogram,
                                  ObserverKind::percentile, ObserverKind::entropy, ObserverKind::mse};

TEST(Observer, MinMaxPerTensorChannelAndGroup) {
  Tensor x = Tensor::empty({2, 4}, DType::f32);
  const float values[] = {1, -2, 3, 4, -5, 6, 7, 8};
  std::memcpy(x.mutable_raw_data(), values, sizeof values);
  auto whole = Observer::create(config(ObserverKind::minmax));
  whole->observe(x);
  auto r = whole->range(QuantScheme{});
  EXPECT_EQ(r.low.data<float>()[0], -5.f);
  EXPECT_EQ(r.high.data<float>()[0], 8.f);
  auto rows = Observer::create(config(ObserverKind::minmax, Granularity::per_channel, 0));
  rows->observe(x);
  r = rows->range(QuantScheme{});
  ASSERT_EQ(r.low.numel(), 2);
  EXPECT_EQ(r.low.data<float>()[0], -2.f);
  EXPECT_EQ(r.high.data<float>()[1], 8.f);
  auto columns = Observer::create(config(ObserverKind::minmax, Granularity::per_channel, 1));
  columns->observe(x);
  r = columns->range(QuantScheme{});
  ASSERT_EQ(r.low.numel(), 4);
  EXPECT_EQ(r.low.data<float>()[0], -5.f);
  EXPECT_EQ(r.high.data<float>()[0], 1.f);
  auto groups = Observer::create(config(ObserverKind::minmax, Granularity::per_group, 1, 2));
  groups->observe(x);
  EXPECT_EQ(groups->range(QuantScheme{}).high.shape(), Shape({2, 2}));
  EXPECT_EQ(groups->qparams(QuantScheme{}).scale.shape(), Shape({2, 2}));
}

TEST(Observer, MovingAverageFollowsPyTorchsUpdate) {
  auto observer = Observer::create(config(ObserverKind::moving_average));
  const float batches[3][2] = {{-1, 1}, {-3, 5}, {0, 2}};
  float lo = 0, hi = 0;
  for (int b = 0; b < 3; ++b) {
    Tensor x = Tensor::empty({2}, DType::f32);
    std::memcpy(x.mutable_raw_data(), batches[b], 8);
    observer->observe(x);
    lo = b == 0 ? batches[b][0] : lo + 0.01f * (batches[b][0] - lo);
    hi = b == 0 ? batches[b][1] : hi + 0.01f * (batches[b][1] - hi);
  }
  const auto r = observer->range(QuantScheme{});
  EXPECT_FLOAT_EQ(r.low.data<float>()[0], lo);
  EXPECT_FLOAT_EQ(r.high.data<float>()[0], hi);
}

TEST(Observer, ChunksMergeToTheSameAnswer) {
  for (ObserverKind kind : kAllKinds) {
    SCOPED_TRACE(observer_kind_name(kind));
    const bool per_channel = kind == ObserverKind::minmax || kind == ObserverKind::moving_average;
    const ObserverConfig c = config(kind, per_channel ? Granularity::per_channel : Granularity::per_tensor, 1);
    auto whole = Observer::create(c), first = Observer::create(c), second = Observer::create(c);
    for (int batch = 0; batch < 6; ++batch) {
      const Tensor x = gaussian_with_outliers({32, 16}, 100 + uint64_t(batch));
      whole->observe(x);
      (batch < 3 ? first : second)->observe(x);
    }
    first->merge(*second);
    EXPECT_EQ(first->observed(), whole->observed());
    for (const QuantScheme& scheme : {QuantScheme{}, int8_affine()}) {
      const auto a = whole->range(scheme), b = first->range(scheme);
      ASSERT_EQ(a.low.numel(), b.low.numel());
      for (int64_t i = 0; i < a.low.numel(); ++i) {
        EXPECT_EQ(a.low.data<float>()[i], b.low.data<float>()[i]);
        EXPECT_EQ(a.high.data<float>()[i], b.high.data<float>()[i]);
      }
    }
    const auto restored = Observer::from_json(nlohmann::json::parse(first->to_json().dump()));
    const auto a = whole->range(int8_affine()), b = restored->range(int8_affine());
    for (int64_t i = 0; i < a.low.numel(); ++i) {
      EXPECT_EQ(a.low.data<float>()[i], b.low.data<float>()[i]);
      EXPECT_EQ(a.high.data<float>()[i], b.high.data<float>()[i]);
    }
  }
}

TEST(Observer, PercentileOfUniformData) {
  Tensor x = Tensor::empty({100000}, DType::f32);
  for (int i = 0; i < 100000; ++i) x.mutable_data<float>()[i] = float(i) / 100000.f;
  ObserverConfig c = config(ObserverKind::percentile);
  c.percentile = 99.f;
  auto observer = Observer::create(c);
  observer->observe(x);
  const auto r = observer->range(QuantScheme{});
  EXPECT_NEAR(r.high.data<float>()[0], 0.99f, 0.99f / 128);  // within one bf16 bin
  EXPECT_NEAR(r.low.data<float>()[0], 0.01f, 0.01f / 128);
}

double data_mse(const Tensor& x, const QParams& qp, const QuantScheme& scheme, float bulk_limit = INFINITY) {
  const Tensor back = dequantize(quantize(x, qp, scheme), qp);
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (std::fabs(x.data<float>()[i]) > bulk_limit) continue;
    const double e = double(back.data<float>()[i]) - x.data<float>()[i];
    sum += e * e;
    ++n;
  }
  return sum / double(n);
}

// Gaussian data with six outliers of magnitude 15-30. The MSE-driven observers (histogram, mse)
// never do worse than min-max (the full range is among their candidates) and at 4 bits clip the
// outliers to do strictly better. At 8 bits keeping the outliers is MSE-optimal, so they must not
// clip there. Entropy (KL) and percentile clip regardless, trading the outliers' error for a finer
// grid on the bulk of the distribution.
TEST(Observer, SearchingObserversOnDataWithOutliers) {
  const Tensor x = gaussian_with_outliers({64, 256}, 7, 6);
  for (int bits : {4, 8}) {
    QuantScheme scheme = int8_affine();
    scheme.bits = bits;
    auto minmax = Observer::create(config(ObserverKind::minmax));
    minmax->observe(x);
    const double baseline = data_mse(x, minmax->qparams(scheme), scheme);
    const double baseline_bulk = data_mse(x, minmax->qparams(scheme), scheme, 5.f);
    for (ObserverKind kind : {ObserverKind::histogram, ObserverKind::mse, ObserverKind::entropy, ObserverKind::percentile}) {
      SCOPED_TRACE(std::string(observer_kind_name(kind)) + " at " + std::to_string(bits) + " bits");
      ObserverConfig c = config(kind);
      c.percentile = 99.9f;  // 16 values per tail; the default 99.99 lies among the 3 outliers
      auto observer = Observer::create(c);
      observer->observe(x);
      const QParams qp = observer->qparams(scheme);
      const float high = observer->range(scheme).high.data<float>()[0];
      if (kind == ObserverKind::histogram || kind == ObserverKind::mse) {
        EXPECT_LE(data_mse(x, qp, scheme), baseline * 1.02);
        if (bits == 4) {
          EXPECT_LT(high, 15.f);
          EXPECT_LT(data_mse(x, qp, scheme), baseline);
        }
      } else {
        EXPECT_LT(high, 15.f);
        EXPECT_LT(data_mse(x, qp, scheme, 5.f), baseline_bulk);
      }
    }
  }
}

TEST(Observer, ClearErrors) {
  EXPECT_THROW(Observer::create(config(ObserverKind::entropy, Granularity::per_channel)), UsageError);
  ObserverConfig bad = config(ObserverKind::percentile);
  bad.percentile = 40;
  EXPECT_THROW(Observer::create(bad), UsageError);
  EXPECT_THROW(observer_kind_from_name("kl"), UsageError);
  auto observer = Observer::create(config(ObserverKind::minmax, Granularity::per_channel, 1));
  EXPECT_THROW(observer->range(QuantScheme{}), UsageError);  // nothing observed
  EXPECT_THROW(observer->observe(Tensor::empty({2, 3}, DType::i32)), UsageError);
  observer->observe(Tensor::empty({2, 3}, DType::f32));
  EXPECT_THROW(observer->observe(Tensor::empty({2, 5}, DType::f32)), UsageError);  // other channel count
  auto other = Observer::create(config(ObserverKind::mse));
  EXPECT_THROW(observer->merge(*other), UsageError);
  EXPECT_THROW(Observer::from_json(nlohmann::json{{"kind", "minmax"}}), FormatError);
}

}  // namespace
}  // namespace shrink
