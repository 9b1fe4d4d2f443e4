// Low-rank factorization: the SVD reconstructs, the truncation error is the tail energy
// (Eckart-Young), factored graphs compute the rank-r product, and bad settings are refused.
#include <gtest/gtest.h>

#include "nn/nn_test_support.h"
#include "shrink/compress/lowrank.h"
#include "shrink/kernels/openblas.h"
#include "shrink/nn/builder.h"

namespace shrink::testing {
namespace {

#define REQUIRE_LAPACK() \
  if (!openblas().sgesdd) GTEST_SKIP() << "no LAPACK on this machine"

TEST(LowRank, SvdReconstructsAndOrdersSingularValues) {
  REQUIRE_LAPACK();
  Rng rng(1);
  Tensor a = random_tensor(Shape{7, 5}, rng);
  compress::Svd d = compress::svd(a.data<float>(), 7, 5);
  ASSERT_EQ(d.k, 5);
  for (int64_t j = 1; j < d.k; ++j) EXPECT_GE(d.s[size_t(j - 1)], d.s[size_t(j)]);
  for (int64_t r = 0; r < 7; ++r)
    for (int64_t c = 0; c < 5; ++c) {
      double v = 0;
      for (int64_t j = 0; j < d.k; ++j) v += double(d.u[size_t(r * d.k + j)]) * d.s[size_t(j)] * d.vt[size_t(j * 5 + c)];
      EXPECT_NEAR(v, a.data<float>()[r * 5 + c], 1e-5);
    }
}

nn::Graph two_linear(uint64_t seed) {
  nn::GraphBuilder b(seed);
  int x = b.input("x", Shape{-1, 40});
  x = b.op("relu", "ReLU", {b.linear("fc1", x, 40, 30)});
  b.output(b.linear("head", x, 30, 3));
  return b.take();
}

TEST(LowRank, TruncationErrorIsTheTailEnergy) {
  REQUIRE_LAPACK();
  nn::Graph g = two_linear(2);
  Tensor w = g.node("fc1").param("weight").value.clone();
  compress::Svd d = compress::svd(w.data<float>(), 30, 40);
  compress::FactorizeConfig config;
  config.rank = 8;
  auto report = compress::factorize(g, config);
  ASSERT_TRUE(report[0].factored);
  EXPECT_FALSE(report[1].factored) << "a 3x30 head has no rank 8";
  EXPECT_NE(report[1].reason.find("exceeds"), std::string::npos) << report[1].reason;
  // The product of the two new weights is the rank-8 approximation.
  const Tensor& first = g.node("fc1.low_rank").param("weight").value;   // (8, 40)
  const Tensor& second = g.node("fc1").param("weight").value;           // (30, 8)
  ASSERT_EQ(first.shape(), (Shape{8, 40}));
  ASSERT_EQ(second.shape(), (Shape{30, 8}));
  double error = 0, tail = 0;
  for (int64_t r = 0; r < 30; ++r)
    for (int64_t c = 0; c < 40; ++c) {
      double v = 0;
      for (int64_t j = 0; j < 8; ++j) v += double(second.data<float>()[r * 8 + j]) * first.data<float>()[j * 40 + c];
      error += (v - w.data<float>()[r * 40 + c]) * (v - w.data<float>()[r * 40 + c]);
    }
  for (int64_t j = 8; j < d.k; ++j) tail += double(d.s[size_t(j)]) * d.s[size_t(j)];
  EXPECT_NEAR(error, tail, 1e-3 * tail);
  EXPECT_EQ(g.node("fc1").find_param("bias") != nullptr, true) << "the bias moves to the second layer";
}

TEST(LowRank, FullRankConvolutionKeepsTheFunction) {
  REQUIRE_LAPACK();
  nn::GraphBuilder b(3);
  int x = b.input("x", Shape{-1, 3, 6, 6});
  b.output(b.conv2d("conv", x, 3, 8, 3, 2, 1));
  nn::Graph g = b.take();
  Rng rng(4);
  Tensor in = random_tensor(Shape{2, 3, 6, 6}, rng);
  Tensor dense = nn::forward(g, std::vector<Tensor>{in})[0].clone();
  compress::FactorizeConfig config;
  config.energy = 1.0;  // keeps every singular value (rank 8 of an 8x27 matrix)
  auto report = compress::factorize(g, config);
  EXPECT_FALSE(report[0].factored) << "full rank saves nothing and is left alone";
  nn::GraphBuilder b2(3);
  int x2 = b2.input("x", Shape{-1, 3, 6, 6});
  b2.output(b2.conv2d("conv", x2, 3, 8, 3, 2, 1));
  nn::Graph g2 = b2.take();
  config = {};
  config.rank = 4;
  report = compress::factorize(g2, config);
  ASSERT_TRUE(report[0].factored);
  EXPECT_EQ(g2.node("conv.low_rank").attrs["stride"], 2);
  Tensor approx = nn::forward(g2, std::vector<Tensor>{in})[0];
  EXPECT_EQ(approx.shape(), dense.shape());
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < dense.numel(); ++i) {
    diff += std::pow(approx.data<float>()[i] - dense.data<float>()[i], 2);
    norm += std::pow(dense.data<float>()[i], 2);
  }
  EXPECT_LT(diff, norm) << "a rank-4 approximation stays close";
  EXPECT_GT(diff, 0.0);
}

TEST(LowRank, RejectsBadSettings) {
  REQUIRE_LAPACK();
  nn::Graph g = two_linear(5);
  compress::FactorizeConfig config;
  EXPECT_THROW(compress::factorize(g, config), UsageError);  // no criterion
  config.rank = 31;
  EXPECT_THROW(compress::factorize(g, config), UsageError);  // larger than 30x40 allows... and head 3x30
  config = {};
  config.ratio = 1.5;
  EXPECT_THROW(compress::factorize(g, config), UsageError);
  config = {};
  config.energy = 2;
  EXPECT_THROW(compress::factorize(g, config), UsageError);
}

}  // namespace
}  // namespace shrink::testing
