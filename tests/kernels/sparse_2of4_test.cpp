// 2:4 sparse f32: packing keeps exactly the nonzeros (groups with 0, 1 or 2 of them) and refuses
// a third; every kernel variant equals the dense product of the unpacked weights within f32
// rounding, over awkward M, N and K (K a multiple of 8, with and without a 16-input tail).
#include <gtest/gtest.h>

#include <cmath>

#include "kernel_test_support.h"
#include "shrink/core/error.h"
#include "shrink/core/rng.h"

namespace shrink {
namespace {

// Dense [n][k] weights with 0, 1 or 2 nonzeros in each group of 4, chosen at random.
std::vector<float> random_2of4(int64_t n, int64_t k, Rng& rng) {
  std::vector<float> w(size_t(n * k), 0.f);
  for (int64_t g = 0; g < n * k / 4; ++g) {
    const int keep = int(rng.below(3));
    for (int kept = 0; kept < keep;) {
      float& slot = w[size_t(4 * g + int64_t(rng.below(4)))];
      if (slot == 0.f) slot = rng.normal(), ++kept;
    }
  }
  return w;
}

TEST(Sparse2of4, PackingKeepsTheNonzerosAndRefusesDenserGroups) {
  Rng rng(3);
  const int64_t n = 5, k = 24;
  std::vector<float> w = random_2of4(n, k, rng);
  ASSERT_TRUE(is_2of4(w.data(), n, k));
  Sparse2of4Storage s = pack_2of4(w.data(), n, k);
  ASSERT_EQ(s.values.size(), size_t(n * k / 2));
  ASSERT_EQ(s.meta.size(), size_t(n * k / 8));
  std::vector<float> unpacked(w.size(), 0.f);
  for (int64_t g = 0; g < n * k / 4; ++g) {
    const int nibble = (s.meta[size_t(g / 2)] >> (4 * (g % 2))) & 15, first = nibble & 3, second = nibble >> 2;
    ASSERT_LT(first, second) << "positions are distinct and ordered";
    unpacked[size_t(4 * g + first)] += s.values[size_t(2 * g)];
    unpacked[size_t(4 * g + second)] += s.values[size_t(2 * g + 1)];
  }
  EXPECT_EQ(unpacked, w);
  w[1] = w[2] = w[3] = 1.f;
  EXPECT_FALSE(is_2of4(w.data(), n, k));
  EXPECT_THROW(pack_2of4(w.data(), n, k), UsageError);
  EXPECT_THROW(pack_2of4(w.data(), 1, 12), UsageError) << "k must be a multiple of 8";
}

TEST(Sparse2of4, EveryVariantEqualsTheDenseProduct) {
  Rng rng(5);
  int ran = testing::for_each_variant(gemm_f32_2of4_variants(), [&](const auto& variant) {
    for (int64_t m : {1, 3, 4, 5, 9})
      for (int64_t n : {1, 7, 16, 33})
        for (int64_t k : {8, 16, 24, 576}) {
          SCOPED_TRACE(::testing::Message() << "m " << m << " n " << n << " k " << k);
          std::vector<float> w = random_2of4(n, k, rng), x(size_t(m * (k + 3)));
          std::vector<float> bias(static_cast<size_t>(n));
          for (auto& v : x) v = rng.normal();
          for (auto& v : bias) v = rng.normal();
          const int64_t ldx = k + 3, ldo = n + 2;  // strided rows
          Sparse2of4Storage s = pack_2of4(w.data(), n, k);
          std::vector<float> out(size_t(m * ldo), -7.f);
          variant.fn(m, x.data(), ldx, s.view(), bias.data(), out.data(), ldo);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t c = 0; c < n; ++c) {
              double want = bias[size_t(c)], magnitude = std::fabs(bias[size_t(c)]);
              for (int64_t j = 0; j < k; ++j) {
                want += double(w[size_t(c * k + j)]) * x[size_t(i * ldx + j)];
                magnitude += std::fabs(double(w[size_t(c * k + j)]) * x[size_t(i * ldx + j)]);
              }
              ASSERT_NEAR(out[size_t(i * ldo + c)], want, 1e-6 * magnitude + 1e-6) << "row " << i << " channel " << c;
            }
          for (int64_t i = 0; i < m; ++i) EXPECT_EQ(out[size_t(i * ldo + n)], -7.f) << "wrote past the row";
        }
  });
  EXPECT_GE(ran, 1);
}

}  // namespace
}  // namespace shrink
