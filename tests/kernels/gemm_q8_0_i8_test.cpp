// Q8_0 activations times int8 row weights (gemm_q8_0_i8): every variant against the exact sum in
// double over the same blocks, for 1-4 activation rows, row counts around the 4-row step, widths of
// one and several blocks, with and without bias, weights including -128 (the sign trick's edge),
// reading the rows as they are and from their 4-row panels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernel_test_support.h"
#include "shrink/core/half.h"
#include "shrink/core/rng.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink {
namespace {

TEST(GemmQ8_0I8, MatchesTheExactBlockSums) {
  Rng rng(41);
  for (int64_t m : {1, 2, 4})
    for (int64_t n : {1, 3, 4, 5, 13, 17, 72})  // 13: an odd panel out; 72: two shares of 9 panels
      for (int64_t k : {32, 64, 576})
        for (bool with_bias : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "m " << m << " n " << n << " k " << k << " bias " << with_bias);
          std::vector<float> x(static_cast<size_t>(m * k)), scale(static_cast<size_t>(n)), bias(static_cast<size_t>(n));
          for (auto& v : x) v = rng.normal() * (rng.below(10) == 0 ? 20.f : 1.f);  // a few large values
          std::vector<int8_t> w(static_cast<size_t>(n * k));
          for (size_t i = 0; i < w.size(); ++i) w[i] = i % 7 == 0 ? int8_t(-128) : int8_t(int(rng.below(255)) - 127);
          for (auto& v : scale) v = rng.uniform(0.001f, 0.01f);
          for (auto& v : bias) v = rng.normal();
          std::vector<BlockQ8_0> blocks(static_cast<size_t>(m * k / 32));
          kernels().quantize_q8_0(x.data(), blocks.data(), m * k);
          std::vector<double> expected(static_cast<size_t>(m * n));
          for (int64_t i = 0; i < m; ++i)
            for (int64_t c = 0; c < n; ++c) {
              double sum = with_bias ? bias[size_t(c)] : 0.0;
              for (int64_t b = 0; b < k / 32; ++b) {
                const BlockQ8_0& block = blocks[size_t(i * k / 32 + b)];
                for (int j = 0; j < 32; ++j)
                  sum += double(f16_to_f32(block.d)) * block.qs[j] * w[size_t(c * k + b * 32 + j)] * scale[size_t(c)];
              }
              expected[size_t(i * n + c)] = sum;
            }
          std::vector<uint8_t> panels(w.size());
          pack_row_panels(reinterpret_cast<const uint8_t*>(w.data()), n, k, panels.data());
          int ran = 0;
          for (const int8_t* with_panels : {static_cast<const int8_t*>(nullptr), reinterpret_cast<const int8_t*>(panels.data())})
          ran += testing::for_each_variant(gemm_q8_0_i8_variants(), [&](const auto& variant) {
            SCOPED_TRACE(with_panels ? "from panels" : "from rows");
            std::vector<float> y(static_cast<size_t>(m * (n + 2)), -3.f);  // rows n + 2 apart
            variant.fn(m, blocks.data(), w.data(), with_panels, scale.data(), n, k, with_bias ? bias.data() : nullptr,
                       y.data(), n + 2);
            for (int64_t i = 0; i < m; ++i) {
              for (int64_t c = 0; c < n; ++c) {
                const double want = expected[size_t(i * n + c)];
                ASSERT_NEAR(y[size_t(i * (n + 2) + c)], want, 1e-5 * (std::fabs(want) + 1.0) * double(k / 32)) << i << "," << c;
              }
              EXPECT_EQ(y[size_t(i * (n + 2) + n)], -3.f) << "wrote past the row";
            }
          });
          EXPECT_GE(ran, 2);
        }
}

}  // namespace
}  // namespace shrink
