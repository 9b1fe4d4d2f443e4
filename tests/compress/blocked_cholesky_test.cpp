// The blocked, threaded Cholesky factorisation and triangular inverse (compress/blocked_cholesky.h)
// against their definitions and against LAPACK's spotrf / strtri called whole, at sizes below,
// at and across the block size (the default's 128 and blocks of 64 and 256), with one thread and
// with two.
#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "compress/blocked_cholesky.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/kernels/openblas.h"

namespace shrink::compress {
namespace {

constexpr float kUntouched = 12345.f;  // what the strictly lower triangle holds, and must keep

// A symmetric positive definite n x n matrix, column-major, with kUntouched below its diagonal
// (the routines read only the upper triangle): X^T X / m + I / 10 of correlated Gaussian rows.
std::vector<float> spd(int64_t n, uint64_t seed) {
  Rng rng(seed);
  const int64_t m = 2 * n + 3;
  std::vector<double> x(size_t(m * n));
  for (double& v : x) v = rng.normal(0.f, 1.f);
  for (int64_t s = 0; s < m; ++s)
    for (int64_t i = n - 1; i > 0; --i) x[size_t(s * n + i)] += 0.7 * x[size_t(s * n + i - 1)];
  std::vector<float> a(size_t(n * n), kUntouched);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i <= j; ++i) {
      double sum = i == j ? 0.1 : 0.0;
      for (int64_t s = 0; s < m; ++s) sum += x[size_t(s * n + i)] * x[size_t(s * n + j)] / double(m);
      a[size_t(i + j * n)] = float(sum);
    }
  return a;
}

// The largest f(i, j) over the upper triangle (i <= j).
template <class F>
double max_over_upper(int64_t n, const F& f) {
  double top = 0;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i <= j; ++i) top = std::max(top, double(f(i, j)));
  return top;
}

double max_abs_upper(const std::vector<float>& a, int64_t n) {
  return max_over_upper(n, [&](int64_t i, int64_t j) { return std::fabs(a[size_t(i + j * n)]); });
}

double max_upper_difference(const std::vector<float>& a, const std::vector<float>& b, int64_t n) {
  return max_over_upper(n, [&](int64_t i, int64_t j) { return std::fabs(a[size_t(i + j * n)] - b[size_t(i + j * n)]); });
}

void expect_lower_untouched(const std::vector<float>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = j + 1; i < n; ++i) ASSERT_EQ(a[size_t(i + j * n)], kUntouched) << i << ", " << j;
}

// n and the block (0: the default for n).
constexpr std::pair<int64_t, int64_t> kSizes[] = {{1, 0}, {17, 0}, {128, 0}, {129, 0}, {300, 0}, {517, 0},
                                                  {300, 64}, {517, 256}, {600, 256}};

class BlockedCholesky : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { set_num_threads(GetParam()); }
  void TearDown() override { set_num_threads(0); }
};

TEST_P(BlockedCholesky, FactorsAsLapackDoesAndRebuildsTheMatrix) {
  const OpenBlas& blas = openblas();
  ASSERT_TRUE(blas.spotrf != nullptr);
  for (const auto& [n, block] : kSizes) {
    SCOPED_TRACE(testing::Message() << n << " wide, blocks of " << block);
    const std::vector<float> a = spd(n, uint64_t(n));
    std::vector<float> r = a, want = a;
    ASSERT_TRUE(cholesky_upper(r.data(), n, block));
    int size = int(n), info = 0;
    blas.spotrf("U", &size, want.data(), &size, &info);
    ASSERT_EQ(info, 0);
    expect_lower_untouched(r, n);
    EXPECT_LT(max_upper_difference(r, want, n), 1e-4 * max_abs_upper(want, n));
    const double worst = max_over_upper(n, [&](int64_t i, int64_t j) {
      double sum = 0;  // (R^T R)(i, j)
      for (int64_t k = 0; k <= i; ++k) sum += double(r[size_t(k + i * n)]) * r[size_t(k + j * n)];
      return std::fabs(sum - a[size_t(i + j * n)]);
    });
    EXPECT_LT(worst, 1e-5 * max_abs_upper(a, n));
  }
}

TEST_P(BlockedCholesky, InvertsAsLapackDoes) {
  const OpenBlas& blas = openblas();
  ASSERT_TRUE(blas.strtri != nullptr);
  for (const auto& [n, block] : kSizes) {
    SCOPED_TRACE(testing::Message() << n << " wide, blocks of " << block);
    std::vector<float> r = spd(n, uint64_t(n) + 99);
    ASSERT_TRUE(cholesky_upper(r.data(), n, block));
    std::vector<float> inverse = r, want = r;
    ASSERT_TRUE(invert_upper(inverse.data(), n, block));
    int size = int(n), info = 0;
    blas.strtri("U", "N", &size, want.data(), &size, &info);
    ASSERT_EQ(info, 0);
    expect_lower_untouched(inverse, n);
    EXPECT_LT(max_upper_difference(inverse, want, n), 1e-4 * max_abs_upper(want, n));
    const double worst = max_over_upper(n, [&](int64_t i, int64_t j) {
      double sum = 0;  // (R R^-1)(i, j)
      for (int64_t k = i; k <= j; ++k) sum += double(r[size_t(i + k * n)]) * inverse[size_t(k + j * n)];
      return std::fabs(sum - (i == j ? 1.0 : 0.0));
    });
    EXPECT_LT(worst, 1e-4);
  }
}

TEST_P(BlockedCholesky, RefusesWhatHasNoFactorOrNoInverse) {
  for (int64_t n : {3, 200}) {
    SCOPED_TRACE(n);
    std::vector<float> a = spd(n, 5);
    a[size_t((n - 1) + (n - 1) * n)] = -1.f;  // the last pivot negative: not positive definite
    EXPECT_FALSE(cholesky_upper(a.data(), n));
    std::vector<float> r = spd(n, 6);
    ASSERT_TRUE(cholesky_upper(r.data(), n));
    for (int64_t zero : {n / 2, n - 1}) {  // at 200 wide, in the first block and in the second
      std::vector<float> singular = r;
      singular[size_t(zero + zero * n)] = 0.f;
      EXPECT_FALSE(invert_upper(singular.data(), n)) << zero;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, BlockedCholesky, ::testing::Values(1, 2));

}  // namespace
}  // namespace shrink::compress
