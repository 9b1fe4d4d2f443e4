// The vectorised exp, sigmoid and tanh against the C library, over the whole useful range, the
// polynomial's branch point, extremes, signed zeros and NaN, at awkward lengths.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernel_test_support.h"
#include "shrink/core/rng.h"

namespace shrink {
namespace {

std::vector<float> test_values() {
  std::vector<float> x;
  for (float v = -30.f; v <= 30.f; v += 0.00731f) x.push_back(v);
  for (float v : {0.f, -0.f, 0.625f, -0.625f, 0.62499f, 1e-8f, -1e-30f, 88.f, -88.f, 100.f, -100.f, 1e30f, -1e30f})
    x.push_back(v);
  return x;
}

template <class Fn> void expect_close_to_reference(std::span<const KernelVariant<Fn>> variants, double relative,
                                                   double absolute) {
  const std::vector<float> x = test_values();
  std::vector<float> expected(x.size());
  variants.front().fn(x.data(), expected.data(), int64_t(x.size()));
  auto close = [&](float got, float want) {  // infinities (exp's overflow) must match exactly
    return std::isinf(want) ? got == want : std::fabs(got - want) <= absolute + relative * std::fabs(want);
  };
  const int ran = testing::for_each_variant(variants, [&](const auto& variant) {
    for (int64_t n : testing::kAwkwardSizes) {
      std::vector<float> y(static_cast<size_t>(n));
      variant.fn(x.data() + 5000, y.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(close(y[size_t(i)], expected[size_t(5000 + i)])) << x[size_t(5000 + i)];
    }
    std::vector<float> y(x.size());
    variant.fn(x.data(), y.data(), int64_t(x.size()));
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_TRUE(close(y[i], expected[i])) << "x = " << x[i] << ": " << y[i] << " vs " << expected[i];
    std::vector<float> in_place = x;  // y may alias x
    variant.fn(in_place.data(), in_place.data(), int64_t(x.size()));
    EXPECT_EQ(in_place, y);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    float out = 0;
    variant.fn(&nan, &out, 1);
    EXPECT_TRUE(std::isnan(out));
  });
  EXPECT_GE(ran, 1);
}

TEST(Activation, SigmoidVariantsMatchTheCLibrary) {
  expect_close_to_reference(sigmoid_f32_variants(), 1e-6, 1e-37);
}

// exp over [-30, 30] and the extremes (+inf past 88.72; 1.3e-38 absolute covers the flush to
// zero below -87.3, where expf is at most 1.2e-38).
TEST(Activation, ExpVariantsMatchTheCLibrary) { expect_close_to_reference(exp_f32_variants(), 2e-7, 1.3e-38); }

TEST(Activation, TanhVariantsMatchTheCLibrary) { expect_close_to_reference(tanh_f32_variants(), 1e-6, 2e-7); }

}  // namespace
}  // namespace shrink

namespace shrink {
namespace {

// The fused LSTM cell against its reference (which composes the reference sigmoid and tanh): the
// activated gates, the cell and the output, for hidden sizes on and off the vector width.
TEST(Activation, LstmCellVariantsMatchTheReference) {
  Rng rng(31);
  for (int64_t h : {1, 7, 8, 13, 64, 515}) {
    SCOPED_TRACE(::testing::Message() << "hidden " << h);
    std::vector<float> gates(static_cast<size_t>(4 * h)), rec(gates.size()), c_prev(static_cast<size_t>(h));
    for (auto& v : gates) v = rng.normal(0.f, 3.f);
    for (auto& v : rec) v = rng.normal();
    for (auto& v : c_prev) v = rng.normal(0.f, 2.f);
    std::vector<float> want_gates = gates, want_c(c_prev.size()), want_h(c_prev.size());
    lstm_cell_f32_variants().front().fn(want_gates.data(), rec.data(), c_prev.data(), want_c.data(), want_h.data(), h);
    for (int64_t j = 0; j < h; ++j) {  // the reference itself, against the formulas in double
      const auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
      const double i = sig(double(gates[size_t(j)]) + rec[size_t(j)]), f = sig(double(gates[size_t(h + j)]) + rec[size_t(h + j)]);
      const double g = std::tanh(double(gates[size_t(2 * h + j)]) + rec[size_t(2 * h + j)]);
      const double o = sig(double(gates[size_t(3 * h + j)]) + rec[size_t(3 * h + j)]);
      const double c = f * c_prev[size_t(j)] + i * g;
      ASSERT_NEAR(want_c[size_t(j)], c, 1e-5 * (1 + std::fabs(c)));
      ASSERT_NEAR(want_h[size_t(j)], o * std::tanh(c), 1e-5);
    }
    const int ran = testing::for_each_variant(lstm_cell_f32_variants(), [&](const auto& variant) {
      std::vector<float> got_gates = gates, got_c(c_prev.size(), -7.f), got_h(c_prev.size(), -7.f);
      variant.fn(got_gates.data(), rec.data(), c_prev.data(), got_c.data(), got_h.data(), h);
      for (size_t e = 0; e < got_gates.size(); ++e) ASSERT_NEAR(got_gates[e], want_gates[e], 2e-6) << "gate " << e;
      for (size_t e = 0; e < got_c.size(); ++e) {
        ASSERT_NEAR(got_c[e], want_c[e], 1e-5 * (1 + std::fabs(want_c[e]))) << "cell " << e;
        ASSERT_NEAR(got_h[e], want_h[e], 1e-5) << "output " << e;
      }
    });
    EXPECT_GE(ran, 1);
  }
}

}  // namespace
}  // namespace shrink
