// Single-query attention (attend_f32, and attend_f16kv with f16 keys and values): every variant
// against softmax(q k^T / sqrt(d)) v computed in double (from the f16 values for attend_f16kv), over head widths around the SIMD width and the 64-wide register block, cache lengths
// around the 8-key step and the 64-position chunk of the online softmax, and 1-7 (and 17: more
// than one block of queries) grouped queries sharing one key/value head with strided rows; also
// the log-sum-exp it reports for merging position ranges. And a prompt's rows (attend_prompt_f32)
// under the causal mask or none, against the same formula over the keys each row sees.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernel_test_support.h"
#include "shrink/core/half.h"
#include "shrink/core/rng.h"

namespace shrink {
namespace {

// Runs `check` for every variant of attend_f32 with k and v as given (rows kv_stride apart), and of
// attend_f16kv with them rounded to f16, the keys in its blocks (the expected values come from the
// rounded ones: k and v are rounded in place before those runs).
template <class Check>
int for_each_attention_variant(std::vector<float>& k, std::vector<float>& v, int64_t kv_stride, int64_t length,
                               int64_t dim, const Check& check) {
  int ran = testing::for_each_variant(attend_f32_variants(), [&](const auto& variant) {
    check([&](auto... args) { variant.fn(args...); }, k.data(), v.data());
  });
  for (float& x : k) x = f16_to_f32(f32_to_f16(x));
  std::vector<uint16_t> v16(v.size());
  for (size_t i = 0; i < v.size(); ++i) v16[i] = f32_to_f16(v[i]), v[i] = f16_to_f32(v16[i]);
  // The keys in blocks of kKeyBlock positions, dimension-major; the block past the last key is
  // filled with large values that would show if it were not ignored.
  const int64_t blocks = (length + kKeyBlock - 1) / kKeyBlock;
  std::vector<uint16_t> k16(static_cast<size_t>(blocks * kKeyBlock * dim), f32_to_f16(3000.f));
  for (int64_t j = 0; j < length; ++j)
    for (int64_t d = 0; d < dim; ++d)
      k16[size_t((j / kKeyBlock) * kKeyBlock * dim + d * kKeyBlock + j % kKeyBlock)] = f32_to_f16(k[size_t(j * kv_stride + d)]);
  ran += testing::for_each_variant(attend_f16kv_variants(), [&](const auto& variant) {
    check([&](auto... args) { variant.fn(args...); }, k16.data(), v16.data());
  });
  return ran;
}

TEST(Attention, SingleQueryAttentionMatchesTheDoublePrecisionFormula) {
  Rng rng(31);
  for (int64_t dim : {8, 12, 64, 72, 128})
    for (int64_t length : {1, 3, 4, 5, 9, 64, 65, 77, 130, 200})
      for (int64_t queries : {1, 2, 3, 4, 7, 17}) {
        SCOPED_TRACE(::testing::Message() << "dim " << dim << " length " << length << " queries " << queries);
        const int64_t kv_stride = 2 * dim + 5, q_stride = dim + 3, y_stride = dim + 1;  // rows of wider tensors
        std::vector<float> q(static_cast<size_t>(queries * q_stride)), k(static_cast<size_t>(length * kv_stride)),
            v(static_cast<size_t>(length * kv_stride));
        for (auto& x : q) x = 2.f * rng.normal();
        for (auto& x : k) x = rng.normal();
        for (auto& x : v) x = rng.normal();
        const float scale = float(1.0 / std::sqrt(double(dim)));
        const auto expect = [&](std::vector<double>& expected, std::vector<double>& expected_lse) {
          for (int64_t r = 0; r < queries; ++r) {
            std::vector<double> p(static_cast<size_t>(length));
            double top = -INFINITY, sum = 0;
            for (int64_t j = 0; j < length; ++j) {
              double dot = 0;
              for (int64_t d = 0; d < dim; ++d) dot += double(q[size_t(r * q_stride + d)]) * k[size_t(j * kv_stride + d)];
              p[size_t(j)] = dot * scale;
              top = std::max(top, p[size_t(j)]);
            }
            for (auto& x : p) sum += x = std::exp(x - top);
            expected_lse[size_t(r)] = top + std::log(sum);
            for (int64_t j = 0; j < length; ++j)
              for (int64_t d = 0; d < dim; ++d)
                expected[size_t(r * dim + d)] += p[size_t(j)] / sum * v[size_t(j * kv_stride + d)];
          }
        };
        int ran = for_each_attention_variant(k, v, kv_stride, length, dim, [&](const auto& fn, const auto* kd, const auto* vd) {
          std::vector<double> expected(static_cast<size_t>(queries * dim)), expected_lse(static_cast<size_t>(queries));
          expect(expected, expected_lse);  // from k and v as the kernel sees them
          std::vector<float> y(static_cast<size_t>(queries * y_stride), -7.f), scratch(static_cast<size_t>(queries * length));
          std::vector<float> lse(static_cast<size_t>(queries + 1), -7.f), y_alone(y);
          fn(queries, q.data(), q_stride, kd, vd, kv_stride, length, dim, scale, y.data(), y_stride, scratch.data(),
             lse.data());
          fn(queries, q.data(), q_stride, kd, vd, kv_stride, length, dim, scale, y_alone.data(), y_stride,
             scratch.data(), nullptr);  // without the log-sum-exp: the same y
          EXPECT_EQ(y, y_alone);
          EXPECT_EQ(lse[size_t(queries)], -7.f) << "wrote past the log-sum-exps";
          for (int64_t r = 0; r < queries; ++r) {
            EXPECT_NEAR(lse[size_t(r)], expected_lse[size_t(r)], 1e-5 * (1 + std::abs(expected_lse[size_t(r)])));
            for (int64_t d = 0; d < dim; ++d)
              ASSERT_NEAR(y[size_t(r * y_stride + d)], expected[size_t(r * dim + d)], 2e-5 * double(dim + length))
                  << r << "," << d;
            EXPECT_EQ(y[size_t(r * y_stride + dim)], -7.f) << "wrote past the row";
          }
        });
        EXPECT_GE(ran, 2);
      }
}

// The keys (rows kv_stride apart) in attend_prompt_f32's blocks: kKeyBlock positions, dimension-
// major, padded to a multiple of 32 positions with NaN (which must be ignored).
std::vector<float> key_blocks(const std::vector<float>& k, int64_t kv_stride, int64_t keys, int64_t dim) {
  const int64_t padded = (keys + 31) / 32 * 32;
  std::vector<float> blocks(static_cast<size_t>(padded * dim), NAN);
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t d = 0; d < dim; ++d)
      blocks[size_t((j / kKeyBlock) * kKeyBlock * dim + d * kKeyBlock + j % kKeyBlock)] = k[size_t(j * kv_stride + d)];
  return blocks;
}

TEST(Attention, PromptRowsMatchTheDoublePrecisionFormulaOverTheKeysEachSees) {
  Rng rng(37);
  struct Case {
    int64_t rows, diagonal, keys;  // diagonal >= keys - 1: no mask
  };
  // Causal from the start and after cached positions, across the 8/16-key vectors, the 32-key
  // steps and the 4/8-row passes; then unmasked (an encoder's).
  const Case cases[] = {{1, 0, 1},    {3, 0, 3},     {9, 5, 14},   {17, 31, 48}, {64, 0, 64},
                        {67, 40, 107}, {5, 32, 33}, {12, 99, 100}, {1, 0, 1},   {8, 16, 17}};
  for (int64_t dim : {8, 16, 24, 64, 72, 128, 264})
    for (const Case& c : cases) {
      SCOPED_TRACE(::testing::Message() << "dim " << dim << " rows " << c.rows << " diagonal " << c.diagonal
                                        << " keys " << c.keys);
      const int64_t kv_stride = 3 * dim + 5, q_stride = 2 * dim + 3, y_stride = dim + 1;  // rows of wider tensors
      std::vector<float> q(static_cast<size_t>(c.rows * q_stride)), k(static_cast<size_t>(c.keys * kv_stride)),
          v(static_cast<size_t>(c.keys * kv_stride));
      for (auto& x : q) x = 2.f * rng.normal();
      for (auto& x : k) x = rng.normal();
      for (auto& x : v) x = rng.normal();
      const float scale = float(1.0 / std::sqrt(double(dim)));
      std::vector<double> expected(static_cast<size_t>(c.rows * dim));
      for (int64_t i = 0; i < c.rows; ++i) {
        const int64_t visible = std::min(c.keys, c.diagonal + i + 1);
        std::vector<double> p(static_cast<size_t>(visible));
        double top = -INFINITY, sum = 0;
        for (int64_t j = 0; j < visible; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < dim; ++d) dot += double(q[size_t(i * q_stride + d)]) * k[size_t(j * kv_stride + d)];
          top = std::max(top, p[size_t(j)] = dot * scale);
        }
        for (auto& x : p) sum += x = std::exp(x - top);
        for (int64_t j = 0; j < visible; ++j)
          for (int64_t d = 0; d < dim; ++d) expected[size_t(i * dim + d)] += p[size_t(j)] / sum * v[size_t(j * kv_stride + d)];
      }
      const std::vector<float> blocks = key_blocks(k, kv_stride, c.keys, dim);
      const int ran = testing::for_each_variant(attend_prompt_f32_variants(), [&](const auto& variant) {
        std::vector<float> y(static_cast<size_t>(c.rows * y_stride), -7.f);
        variant.fn(c.rows, q.data(), q_stride, blocks.data(), v.data(), kv_stride, c.keys, dim, scale, c.diagonal,
                   y.data(), y_stride);
        for (int64_t i = 0; i < c.rows; ++i) {
          for (int64_t d = 0; d < dim; ++d)
            ASSERT_NEAR(y[size_t(i * y_stride + d)], expected[size_t(i * dim + d)], 2e-5 * double(dim + c.keys))
                << variant.name << " row " << i << " dimension " << d;
          EXPECT_EQ(y[size_t(i * y_stride + dim)], -7.f) << "wrote past the row";
        }
      });
      EXPECT_GE(ran, 1);
    }
}

}  // namespace
}  // namespace shrink
