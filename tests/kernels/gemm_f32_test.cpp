// Every gemm_f32 variant against the scalar reference: all transpose combinations, padded leading
// dimensions, alpha/beta, awkward sizes. Float results agree within a bound scaled by K.
#include <gtest/gtest.h>

#include <cmath>

#include "kernel_test_support.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/kernels/openblas.h"

namespace shrink {
namespace {

void check_gemm(GemmF32Fn fn, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, float beta, Rng& rng) {
  const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
  std::vector<float> a(size_t((ta ? k : m) * lda)), b(size_t((tb ? n : k) * ldb)), c(size_t(m * ldc));
  for (auto& x : a) x = rng.uniform(-1, 1);
  for (auto& x : b) x = rng.uniform(-1, 1);
  for (auto& x : c) x = rng.uniform(-1, 1);
  std::vector<float> expected = c;
  gemm_f32_variants().front().fn(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, expected.data(), ldc);
  fn(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
  // |a|,|b|,|c| <= 1: the accumulated rounding error is bounded by about K * eps * (|alpha| + |beta|).
  const float bound = 4.f * float(k + 2) * 1.2e-7f * (std::fabs(alpha) + std::fabs(beta) + 1.f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      ASSERT_NEAR(c[size_t(i * ldc + j)], expected[size_t(i * ldc + j)], bound)
          << "m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb << " at " << i << "," << j;
}

TEST(GemmF32, EveryVariantMatchesTheReference) {
  Rng rng(3);
  const int ran = testing::for_each_variant(gemm_f32_variants(), [&](const auto& variant) {
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (int64_t m : {1, 3, 17, 64})
          for (int64_t n : {1, 7, 33})
            for (int64_t k : {1, 16, 31, 100}) check_gemm(variant.fn, ta, tb, m, n, k, 1.f, 0.f, rng);
    check_gemm(variant.fn, false, true, 37, 65, 257, 0.5f, 1.f, rng);
    check_gemm(variant.fn, true, false, 64, 64, 64, -2.f, 0.25f, rng);
  });
  EXPECT_GE(ran, 1);
}

// On one thread (as inside a parallel loop) a single row times a (k, n) matrix takes a GEMV path.
TEST(GemmF32, OneThreadSingleRowsMatchTheReference) {
  Rng rng(4);
  const int before = num_threads();
  set_num_threads(1);
  testing::for_each_variant(gemm_f32_variants(), [&](const auto& variant) {
    for (bool ta : {false, true})
      for (int64_t n : {1, 7, 64, 130})
        for (int64_t k : {1, 31, 300}) {
          check_gemm(variant.fn, ta, false, 1, n, k, 1.f, 0.f, rng);
          check_gemm(variant.fn, ta, false, 1, n, k, 0.5f, 1.f, rng);
        }
  });
  set_num_threads(before);
}

TEST(GemmF32, BetaZeroIgnoresGarbageInC) {
  testing::for_each_variant(gemm_f32_variants(), [&](const auto& variant) {
    const float a[2] = {1, 2}, b[2] = {3, 4};
    float c[1] = {NAN};
    variant.fn(false, false, 1, 1, 2, 1.f, a, 2, b, 1, 0.f, c, 1);
    EXPECT_EQ(c[0], 11.f);
  });
}

TEST(OpenBlas, IsLoadedWithAGoodCoreTypeWhenInstalled) {
  const OpenBlas& blas = openblas();
  if (!blas.loaded) GTEST_SKIP() << "OpenBLAS is not installed on this machine";
  EXPECT_NE(blas.core_name, "Prescott") << "OpenBLAS runs its slowest kernels; was OPENBLAS_CORETYPE set too late?";
  EXPECT_FALSE(blas.core_name.empty());
}

// Every syrk_f32 variant against the scalar reference: the upper triangle gains A^T A (padded leading
// dimensions, awkward sizes), the lower triangle keeps what it held.
TEST(SyrkF32, EveryVariantMatchesTheReferenceOnTheUpperTriangle) {
  Rng rng(5);
  const int ran = testing::for_each_variant(syrk_f32_variants(), [&](const auto& variant) {
    for (int64_t n : {1, 7, 33, 100})
      for (int64_t k : {1, 16, 257}) {
        const int64_t lda = n + 3, ldc = n + 2;
        std::vector<float> a(size_t(k * lda)), c(size_t(n * ldc));
        for (auto& x : a) x = rng.uniform(-1, 1);
        for (auto& x : c) x = rng.uniform(-1, 1);
        std::vector<float> expected = c;
        syrk_f32_variants().front().fn(n, k, a.data(), lda, expected.data(), ldc);
        std::vector<float> got = c;
        variant.fn(n, k, a.data(), lda, got.data(), ldc);
        const float bound = 4.f * float(k + 2) * 1.2e-7f;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < n; ++j) {
            const size_t e = size_t(i * ldc + j);
            if (j < i)
              ASSERT_EQ(got[e], c[e]) << "n=" << n << " k=" << k << ": the lower triangle changed at " << i << "," << j;
            else
              ASSERT_NEAR(got[e], expected[e], bound) << "n=" << n << " k=" << k << " at " << i << "," << j;
          }
      }
  });
  EXPECT_GE(ran, 1);
}

}  // namespace
}  // namespace shrink
