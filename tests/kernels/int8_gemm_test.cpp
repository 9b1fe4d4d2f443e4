// The int8 path: every variant of the row quantizer and of the u8 x s8 GEMM equals the scalar
// reference exactly (integer accumulation, same float epilogue), over awkward shapes; and the
// quantized matmul approximates the f32 matmul within the quantization error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernel_test_support.h"
#include "shrink/core/rng.h"
#include "shrink/eval/kernel_benchmarks.h"
#include "shrink/kernels/cpu.h"

namespace shrink {
namespace {

struct Problem {
  int64_t m, n, k;
  std::vector<float> x, w;  // x [m][k], w [n][k]
};

Problem make_problem(int64_t m, int64_t n, int64_t k, Rng& rng) {
  Problem p{m, n, k, std::vector<float>(size_t(m * k)), std::vector<float>(size_t(n * k))};
  for (auto& v : p.x) v = rng.normal(0.1f, 1.f);
  for (auto& v : p.w) v = rng.normal(0.f, 0.05f);
  return p;
}

struct QuantizedWeights {
  std::vector<int8_t> packed;
  std::vector<int32_t> sums;
  std::vector<float> scale;
};

QuantizedWeights quantize_weights(const Problem& p) {  // symmetric per channel, [-127, 127]
  QuantizedWeights q;
  std::vector<int8_t> w(p.w.size());
  for (int64_t c = 0; c < p.n; ++c) {
    float amax = 0;
    for (int64_t j = 0; j < p.k; ++j) amax = std::max(amax, std::fabs(p.w[size_t(c * p.k + j)]));
    q.scale.push_back(amax > 0 ? amax / 127.f : 1.f);
    for (int64_t j = 0; j < p.k; ++j) w[size_t(c * p.k + j)] = int8_t(std::nearbyint(p.w[size_t(c * p.k + j)] / q.scale.back()));
  }
  q.packed.resize(int8_packed_bytes(p.n, p.k));
  q.sums.resize(size_t(p.n));
  pack_int8_weights(w.data(), p.n, p.k, q.packed.data(), q.sums.data());
  return q;
}

TEST(Int8, RowQuantizersMatchTheReference) {
  Rng rng(8);
  // Rows whose minimum lands one code below 0 before the clamp: x·(1/scale) rounds to one less
  // than -zero = -round(min/scale) (found by a search over random ranges).
  const std::pair<float, float> clamped_ranges[] = {{-0x1.39d082p+3f, 0x1.76dfa6p+0f}, {-0x1.b12f2p+0f, 0x1.95a3f8p-1f}};
  for (int64_t k : testing::kAwkwardSizes) {
    Problem p = make_problem(5, 1, k, rng);
    if (k >= 2)
      for (int r = 0; r < 2; ++r) {
        const auto [lo, hi] = clamped_ranges[r];
        float* row = p.x.data() + r * k;
        for (int64_t j = 0; j < k; ++j) row[j] = std::clamp(row[j], lo, hi);
        row[0] = lo, row[k - 1] = hi;
      }
    const int64_t ldq = int8_padded_k(k) + 4;
    std::vector<uint8_t> expected(size_t(5 * ldq), 0xee);
    std::vector<float> expected_scale(5);
    std::vector<int32_t> expected_zero(5);
    quantize_rows_u8_variants().front().fn(p.x.data(), 5, k, k, expected.data(), ldq, expected_scale.data(), expected_zero.data());
    for (uint8_t v : expected) ASSERT_LE(v, 127);
    if (k >= 2) {
      EXPECT_EQ(expected[0], 0) << "k=" << k;  // clamped up from -1
    }
    testing::for_each_variant(quantize_rows_u8_variants(), [&](const auto& variant) {
      std::vector<uint8_t> q(size_t(5 * ldq), 0xee);
      std::vector<float> scale(5);
      std::vector<int32_t> zero(5);
      variant.fn(p.x.data(), 5, k, k, q.data(), ldq, scale.data(), zero.data());
      EXPECT_EQ(q, expected) << "k=" << k;
      EXPECT_EQ(scale, expected_scale);
      EXPECT_EQ(zero, expected_zero);
    });
  }
}

// Every GEMM variant against the first (the reference), bit for bit, in all four epilogue modes.
void expect_gemm_variants_equal(int64_t m, int64_t n, int64_t k, Rng& rng) {
  const Problem p = make_problem(m, n, k, rng);
  const QuantizedWeights w = quantize_weights(p);
  const int64_t lda = int8_padded_k(k);
  std::vector<uint8_t> a(size_t(m * lda));
  std::vector<float> a_scale(static_cast<size_t>(m)), bias(static_cast<size_t>(n));
  std::vector<int32_t> a_zero(static_cast<size_t>(m));
  kernels().quantize_rows_u8(p.x.data(), m, k, k, a.data(), lda, a_scale.data(), a_zero.data());
  for (auto& b : bias) b = rng.normal();
  for (int mode = 0; mode < 4; ++mode) {  // f32; f32 + bias + relu; u8 requantized; u8 in [0, 127]
    Int8Epilogue e;
    e.a_scale = a_scale.data();
    e.a_zero = a_zero.data();
    e.b_scale = w.scale.data();
    e.b_col_sums = w.sums.data();
    e.bias = mode >= 1 ? bias.data() : nullptr;
    e.relu = mode == 1;
    e.ldo = n;
    std::vector<float> expected_f32(size_t(m * n)), out_f32(size_t(m * n));
    std::vector<uint8_t> expected_u8(size_t(m * n)), out_u8(size_t(m * n));
    if (mode >= 2) {
      e.out_u8 = expected_u8.data();
      e.out_inverse_scale = 20.f;
      e.out_zero = 100;
      if (mode == 3) e.out_max = 127;
    } else {
      e.out_f32 = expected_f32.data();
    }
    gemm_u8s8_variants().front().fn(m, n, k, a.data(), lda, w.packed.data(), e);
    testing::for_each_variant(gemm_u8s8_variants(), [&](const auto& variant) {
      Int8Epilogue mine = e;
      // Fresh marks before every variant, so that an output one skips cannot keep the previous one's value.
      std::fill(out_f32.begin(), out_f32.end(), NAN);
      std::fill(out_u8.begin(), out_u8.end(), uint8_t(0xa5));
      if (mode >= 2) mine.out_u8 = out_u8.data(); else mine.out_f32 = out_f32.data();
      variant.fn(m, n, k, a.data(), lda, w.packed.data(), mine);
      if (mode >= 2) {
        ASSERT_EQ(out_u8, expected_u8) << m << "x" << n << "x" << k;
        if (mode == 3) {
          ASSERT_LE(*std::max_element(out_u8.begin(), out_u8.end()), 127);
        }
      } else {
        ASSERT_EQ(std::memcmp(out_f32.data(), expected_f32.data(), out_f32.size() * 4), 0) << m << "x" << n << "x" << k << " mode " << mode;
      }
    });
  }
}

TEST(Int8, GemmVariantsMatchTheReferenceExactly) {
  Rng rng(9);
  // m 16..48 and k >= 64 reach the AMX variant's 16- and 32-row blocks, its k tail and its rows left over.
  for (int64_t m : {1, 2, 3, 4, 5, 9, 20, 33, 48})
    for (int64_t n : {1, 7, 16, 17, 40})
      for (int64_t k : {1, 3, 4, 17, 64, 100}) expect_gemm_variants_equal(m, n, k, rng);
  // One row over many panels: the AVX2 GEMV pairs each thread's panels (69 panels: shares of 34
  // and 35 on two threads, the last panel partial).
  for (int64_t k : {4, 100}) expect_gemm_variants_equal(1, 1100, k, rng);
  // The AMX variant walks each thread's panel pairs in chunks of about 1 MB of weights: at k = 8200
  // a chunk is 3 pairs, so 8 pairs (the last one panel) make chunks of 3 and 1 on each of 2 threads.
  expect_gemm_variants_equal(49, 229, 8200, rng);
  // With rows enough and weights that fit in L2 the AMX and VNNI variants' threads split the rows:
  // for AMX 150 rows are 4 blocks of 32, one of 16 and 6 left over, split at a block boundary; for
  // VNNI 25 tiles of 6 rows, split by the threads' measured speeds at a tile boundary.
  expect_gemm_variants_equal(150, 40, 100, rng);
  // The AMX variant's split by rows with each thread packing its own rows' tiles during the row
  // block before, over two chunks of 16 pairs (the last pair one panel), each chunk packing its
  // first row block again; 8 rows left over. Each block's epilogue runs during the next block.
  expect_gemm_variants_equal(200, 1000, 2048, rng);
  // The VNNI variant walks k in blocks of 512 bytes once there are two 6-row tiles: k = 1024 is
  // two whole blocks (the 8200 above ends on a partial one); 23 rows end on a 5-row tile.
  expect_gemm_variants_equal(23, 70, 1024, rng);
}

// Long rows: the AVX2 GEMM walks m in blocks sized to L2 (~90 rows of 4100 bytes on a 512 KB L2),
// so this crosses block edges and ends on a partial tile. The VNNI GEMM's threads split these 22
// tiles (the last of 5 rows) and walk k in blocks, the last one partial.
TEST(Int8, GemmVariantsMatchTheReferenceAcrossRowBlocks) {
  Rng rng(11);
  for (int64_t n : {17, 40}) expect_gemm_variants_equal(131, n, 4100, rng);
}

// quantized_matmul(x, q(w)) ≈ x @ w^T: the error is bounded by the two quantization steps.
TEST(Int8, QuantizedMatmulApproximatesF32) {
  Rng rng(10);
  for (int64_t k : {16, 64, 256}) {
    const Problem p = make_problem(8, 24, k, rng);
    const QuantizedWeights w = quantize_weights(p);
    const int64_t lda = int8_padded_k(k);
    std::vector<uint8_t> a(size_t(8 * lda));
    std::vector<float> a_scale(8), out(8 * 24);
    std::vector<int32_t> a_zero(8);
    kernels().quantize_rows_u8(p.x.data(), 8, k, k, a.data(), lda, a_scale.data(), a_zero.data());
    Int8Epilogue e;
    e.a_scale = a_scale.data();
    e.a_zero = a_zero.data();
    e.b_scale = w.scale.data();
    e.b_col_sums = w.sums.data();
    e.out_f32 = out.data();
    e.ldo = 24;
    kernels().gemm_u8s8(8, 24, k, a.data(), lda, w.packed.data(), e);
    for (int64_t i = 0; i < 8; ++i)
      for (int64_t c = 0; c < 24; ++c) {
        double exact = 0, bound = 0;
        for (int64_t j = 0; j < k; ++j) {
          const double x = p.x[size_t(i * k + j)], wv = p.w[size_t(c * k + j)];
          exact += x * wv;
          bound += std::fabs(x) * w.scale[size_t(c)] / 2 + std::fabs(wv) * a_scale[size_t(i)] / 2 +
                   a_scale[size_t(i)] * w.scale[size_t(c)] / 4;
        }
        EXPECT_NEAR(out[size_t(i * 24 + c)], exact, bound + 1e-5) << i << "," << c << " k=" << k;
      }
  }
}

// The compute ceiling bench_int8_compare holds the GEMM to: it runs where VNNI is active and reads
// as a rate far above any scalar one; without VNNI it reports 0.
TEST(Int8, VnniPeakProbeRunsWhereVnniIsActive) {
  const double peak = measure_vnni_dot_peak();
  if (active_isa() >= Isa::vnni)
    EXPECT_GT(peak, 1e10);
  else
    EXPECT_EQ(peak, 0.0);
}

}  // namespace
}  // namespace shrink
