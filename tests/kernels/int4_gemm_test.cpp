// int4 x int8: the row quantizer equals the reference exactly; the GEMM variants agree with the
// reference within a bound scaled by K (float accumulation order differs); and the quantized
// matmul approximates x @ dequantize(w)^T within the activation quantization error, swept over
// group size and M/N/K (MLX's quantized-matmul oracle).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <tuple>

#include "kernel_test_support.h"
#include "kernels/int4_decode_layout.h"
#include "shrink/core/half.h"
#include "shrink/core/rng.h"
#include "shrink/quant/scheme.h"

namespace shrink {
namespace {

struct Int4Problem {
  int64_t m, n, k, group;
  std::vector<float> x;
  std::vector<uint8_t> q, nibbles;
  std::vector<uint16_t> scales, mins;
  std::vector<float> bias;
  Int4Weights weights() const { return {nibbles.data(), scales.data(), mins.data(), n, k, group}; }
  float weight(int64_t c, int64_t j) const {
    const int64_t g = c * (k / group) + j / group;
    return float(q[size_t(c * k + j)]) * f16_to_f32(scales[size_t(g)]) + f16_to_f32(mins[size_t(g)]);
  }
};

Int4Problem make(int64_t m, int64_t n, int64_t k, int64_t group, Rng& rng) {
  Int4Problem p{m, n, k, group, {}, {}, {}, {}, {}, {}};
  p.x.resize(size_t(m * k));
  for (auto& v : p.x) v = rng.normal();
  p.q.resize(size_t(n * k));
  for (auto& v : p.q) v = uint8_t(rng.below(16));
  for (int64_t i = 0; i < n * k / group; ++i) {
    p.scales.push_back(f32_to_f16(rng.uniform(0.001f, 0.02f)));
    p.mins.push_back(f32_to_f16(rng.uniform(-0.15f, 0.f)));
  }
  p.nibbles.resize(size_t(n * k / 2));
  pack_int4_nibbles(p.q.data(), n, k, p.nibbles.data());
  p.bias.resize(size_t(n));
  for (auto& b : p.bias) b = rng.normal();
  return p;
}

TEST(Int4, RowQuantizersMatchTheReference) {
  Rng rng(21);
  for (int64_t group : {32, 64, 128})
    for (int64_t k : {group, 2 * group, 5 * group}) {
      const Int4Problem p = make(3, 1, k, group, rng);
      std::vector<int8_t> expected(size_t(3 * k));
      std::vector<float> expected_scale(3);
      std::vector<int32_t> expected_sums(size_t(3 * k / group));
      quantize_rows_s8_variants().front().fn(p.x.data(), 3, k, group, expected.data(), expected_scale.data(), expected_sums.data());
      testing::for_each_variant(quantize_rows_s8_variants(), [&](const auto& variant) {
        std::vector<int8_t> q(size_t(3 * k));
        std::vector<float> scale(3);
        std::vector<int32_t> sums(size_t(3 * k / group));
        variant.fn(p.x.data(), 3, k, group, q.data(), scale.data(), sums.data());
        EXPECT_EQ(q, expected);
        EXPECT_EQ(scale, expected_scale);
        EXPECT_EQ(sums, expected_sums);
      });
    }
}

TEST(Int4, GemmMatchesTheReferenceAndApproximatesF32) {
  Rng rng(22);
  for (int64_t group : {32, 64, 128})
    for (int64_t m : {1, 2, 3, 4, 5, 9, 16, 23, 40})  // 8 and more take the prefill path, 16 and more AMX's
      for (int64_t n : {1, 7, 17, 33, 70})  // 70: a whole block of 4 panels (the VNNI prefill's) and a part
        // 576: an odd count of 64-value loads; 1536: three of the VNNI prefill's blocks of groups
        // (32 KB of expanded weights each) at every group size, 576 two at groups of 32 and 64.
        for (int64_t k : {group, 4 * group, int64_t(576), int64_t(1536)}) {
          if (k % group) continue;
          SCOPED_TRACE(::testing::Message() << "group " << group << " m " << m << " n " << n << " k " << k);
          const Int4Problem p = make(m, n, k, group, rng);
          std::vector<int8_t> q(size_t(m * k));
          std::vector<float> a_scale(static_cast<size_t>(m));
          std::vector<int32_t> sums(size_t(m * k / group));
          kernels().quantize_rows_s8(p.x.data(), m, k, group, q.data(), a_scale.data(), sums.data());
          std::vector<float> expected(size_t(m * n));
          gemm_q4s8_variants().front().fn(m, q.data(), a_scale.data(), sums.data(), p.weights(), p.bias.data(), expected.data(), n);
          // The oracle: f32 matmul against the dequantized weights, within the activation rounding.
          for (int64_t i = 0; i < m; ++i)
            for (int64_t c = 0; c < n; ++c) {
              double exact = p.bias[size_t(c)], bound = 1e-4;
              for (int64_t j = 0; j < k; ++j) {
                exact += double(p.x[size_t(i * k + j)]) * p.weight(c, j);
                bound += std::fabs(p.weight(c, j)) * a_scale[size_t(i)] * 0.5;
              }
              ASSERT_NEAR(expected[size_t(i * n + c)], exact, bound) << i << "," << c;
            }
          testing::for_each_variant(gemm_q4s8_variants(), [&](const auto& variant) {
            std::vector<float> out(size_t(m * n));
            variant.fn(m, q.data(), a_scale.data(), sums.data(), p.weights(), p.bias.data(), out.data(), n);
            for (size_t e = 0; e < out.size(); ++e)
              ASSERT_NEAR(out[e], expected[e], 1e-6f * float(k) * (std::fabs(expected[e]) + 1.f)) << "element " << e;
          });
        }
}

TEST(Int4, PanelsHoldFourRowsRunByRun) {
  Rng rng(25);
  const Int4Problem p = make(1, 9, 128, 64, rng);  // two whole panels and a row left as it was
  std::vector<uint8_t> panels(p.nibbles.size());
  pack_int4_panels(p.nibbles.data(), p.n, p.k, panels.data());
  const int64_t row_bytes = p.k / 2;
  for (int64_t panel = 0; panel < 2; ++panel)
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t run = 0; run < 2; ++run)
        EXPECT_EQ(0, std::memcmp(panels.data() + panel * 4 * row_bytes + (4 * run + c) * 32,
                                 p.nibbles.data() + (4 * panel + c) * row_bytes + run * 32, 32));
  EXPECT_EQ(0, std::memcmp(panels.data() + 8 * row_bytes, p.nibbles.data() + 8 * row_bytes, size_t(row_bytes)));
}

// The scales of groups of 32 in the panels' order: each pair of a panel's rows takes, step by
// step, groups 2t and 2t + 1 of its first row and then of its second; rows after the panels as
// they were.
TEST(Int4, PanelScalesHoldEachPairOfRowsStepByStep) {
  const int64_t n = 10, k = 192, groups = k / 32;  // two panels and two rows left over
  std::vector<uint16_t> scales(size_t(n * groups)), ordered(scales.size());
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = uint16_t(i);
  pack_int4_panel_scales(scales.data(), n, k, 32, ordered.data());
  for (int64_t panel = 0; panel < n / 4; ++panel)
    for (int64_t pair = 0; pair < 2; ++pair)
      for (int64_t t = 0; t < groups / 2; ++t)
        for (int64_t j = 0; j < 4; ++j) {
          const int64_t row = 4 * panel + 2 * pair + j / 2, group = 2 * t + j % 2;
          EXPECT_EQ(ordered[size_t((4 * panel + 2 * pair) * groups + 4 * t + j)], scales[size_t(row * groups + group)])
              << "panel " << panel << " pair " << pair << " step " << t << " value " << j;
        }
  for (int64_t i = 8 * groups; i < n * groups; ++i) EXPECT_EQ(ordered[size_t(i)], scales[size_t(i)]);
  EXPECT_THROW(pack_int4_panel_scales(scales.data(), n, k, 64, ordered.data()), std::invalid_argument);
}

// What decoding p's one row needs beside the weights: the panel copy of the nibbles, at groups of
// 32 the scales in the panels' order (where k % 64 == 0), and the row quantized to s8.
struct DecodeInputs {
  std::vector<uint8_t> panels;
  std::vector<uint16_t> panel_scales;
  std::vector<int8_t> q;
  float a_scale = 0;
  std::vector<int32_t> sums;
};

DecodeInputs decode_inputs(const Int4Problem& p) {
  DecodeInputs d;
  if (p.k % 64 == 0) {  // (the panels need it)
    d.panels.resize(p.nibbles.size());
    pack_int4_panels(p.nibbles.data(), p.n, p.k, d.panels.data());
    d.panel_scales.resize(p.scales.size());
    if (p.group == 32) pack_int4_panel_scales(p.scales.data(), p.n, p.k, p.group, d.panel_scales.data());
  }
  d.q.resize(static_cast<size_t>(p.k));
  d.sums.resize(size_t(p.k / p.group));
  kernels().quantize_rows_s8(p.x.data(), 1, p.k, p.group, d.q.data(), &d.a_scale, d.sums.data());
  return d;
}

// Decoding with the panel copy of the nibbles gives the reference's products (which read the
// rows), for every group the decode kernels special-case and for rows left over after the panels.
// At groups of 32, k = 384, 576 and 768 give 12, 18 and 24 groups a row: the VNNI kernel converts a
// panel's 4 x groups scales 16 at a time, whole at 48 and 96 and with a tail of 8 at 72.
TEST(Int4, DecodingFromPanelsMatchesTheReference) {
  Rng rng(26);
  for (int64_t group : {32, 64, 128, 192, 256})
    for (int64_t n : {4, 7, 17, 36})
      for (int64_t k : {int64_t(384), int64_t(576), int64_t(768), 4 * group}) {
        if (k % group || k % 64) continue;
        SCOPED_TRACE(::testing::Message() << "group " << group << " n " << n << " k " << k);
        const Int4Problem p = make(1, n, k, group, rng);
        DecodeInputs d = decode_inputs(p);
        std::vector<float> expected(static_cast<size_t>(n));
        gemm_q4s8_variants().front().fn(1, d.q.data(), &d.a_scale, d.sums.data(), p.weights(), p.bias.data(), expected.data(), n);
        // Groups of 32: with the scales in the panels' order (the VNNI kernel's case) and without.
        for (bool ordered_scales : {true, false}) {
          if (ordered_scales && group != 32) continue;
          Int4Weights with_panels = p.weights();
          with_panels.panels = d.panels.data();
          if (ordered_scales) with_panels.panel_scales = d.panel_scales.data();
          testing::for_each_variant(gemm_q4s8_variants(), [&](const auto& variant) {
            std::vector<float> out(static_cast<size_t>(n));
            variant.fn(1, d.q.data(), &d.a_scale, d.sums.data(), with_panels, p.bias.data(), out.data(), n);
            for (size_t e = 0; e < out.size(); ++e)
              ASSERT_NEAR(out[e], expected[e], 1e-6f * float(k) * (std::fabs(expected[e]) + 1.f))
                  << "element " << e << (ordered_scales ? ", scales in the panels' order" : "");
          });
        }
      }
}

// The decode layout (what Int4Linear decodes from): panels, scales and mins copied into one span
// of the weight arena, so the products equal those from panels built beside the input, bit for bit,
// after the input's scales and mins are overwritten (at groups of 32 the scales in the panels'
// order are the copy; the row-order ones stay the input's); with k % 64 != 0 there is no layout
// and the weights are the input's.
TEST(Int4, TheDecodeLayoutHoldsCopiesThatGiveTheSameProducts) {
  Rng rng(27);
  for (int64_t group : {32, 64, 128})
    for (int64_t k : {int64_t(96), int64_t(576)}) {
      if (k % group) continue;
      SCOPED_TRACE(::testing::Message() << "group " << group << " k " << k);
      const int64_t n = 10;
      Int4Problem p = make(1, n, k, group, rng);
      const Int4DecodeLayout layout = make_int4_decode_layout(p.weights());
      if (k % 64) {
        EXPECT_TRUE(layout.memory.empty());
        EXPECT_EQ(layout.weights.panels, nullptr);
        EXPECT_EQ(layout.weights.scales, p.scales.data());
        EXPECT_EQ(layout.weights.mins, p.mins.data());
        continue;
      }
      const std::byte* begin = layout.memory.data();
      const std::byte* end = begin + layout.memory.size();
      const auto inside = [&](const void* at) {
        const auto* b = static_cast<const std::byte*>(at);
        return b >= begin && b < end && reinterpret_cast<uintptr_t>(b) % 64 == 0;
      };
      EXPECT_TRUE(inside(layout.weights.panels));
      EXPECT_TRUE(inside(layout.weights.mins));
      EXPECT_TRUE(inside(group == 32 ? static_cast<const void*>(layout.weights.panel_scales) : layout.weights.scales));
      DecodeInputs d = decode_inputs(p);
      Int4Weights beside = p.weights();
      beside.panels = d.panels.data();
      if (group == 32) beside.panel_scales = d.panel_scales.data();
      std::vector<float> expected(static_cast<size_t>(n)), out(static_cast<size_t>(n));
      kernels().gemm_q4s8(1, d.q.data(), &d.a_scale, d.sums.data(), beside, p.bias.data(), expected.data(), n);
      std::vector<uint16_t> scales = p.scales, mins = p.mins;  // the layout must not read the input again
      std::fill(p.scales.begin(), p.scales.end(), uint16_t(0x7c00));
      std::fill(p.mins.begin(), p.mins.end(), uint16_t(0x7c00));
      Int4Weights from_layout = layout.weights;
      if (group == 32) from_layout.scales = scales.data();  // at groups of 32 the layout keeps the input's row-order scales
      kernels().gemm_q4s8(1, d.q.data(), &d.a_scale, d.sums.data(), from_layout, p.bias.data(), out.data(), n);
      for (size_t e = 0; e < out.size(); ++e) ASSERT_EQ(out[e], expected[e]) << "element " << e;
    }
}

// The row blocks of 8 and 16 rows: for each group, line i's lane r holds row rows * b + r's nibble
// bytes 4 (group / 8 * g + i) .. + 3, then a line of the rows' scales and their mins.
TEST(Int4, RowBlocksHoldEightOrSixteenRowsLaneByLane) {
  Rng rng(28);
  for (int64_t rows : {8, 16})
    for (int64_t group : {32, 64, 128, 256}) {
      SCOPED_TRACE(::testing::Message() << rows << " rows, group " << group);
      const int64_t n = 32, k = 2 * group, groups = k / group, lines = group / 8, line_bytes = 4 * rows;
      const Int4Problem p = make(1, n, k, group, rng);
      ASSERT_TRUE(int4_row_blocks_fit(p.weights(), rows));
      const int64_t block_bytes = int4_row_block_bytes(k, group, rows);
      ASSERT_EQ(block_bytes, groups * (lines + 1) * line_bytes);
      std::vector<uint8_t> blocks(size_t(n / rows * block_bytes));
      pack_int4_row_blocks(p.weights(), rows, blocks.data());
      for (int64_t row = 0; row < n; ++row)
        for (int64_t g = 0; g < groups; ++g) {
          const uint8_t* block = blocks.data() + row / rows * block_bytes + g * (lines + 1) * line_bytes;
          const int64_t lane = row % rows;
          for (int64_t i = 0; i < lines; ++i)
            for (int64_t byte = 0; byte < 4; ++byte)
              ASSERT_EQ(block[i * line_bytes + 4 * lane + byte],
                        p.nibbles[size_t(row * k / 2 + 4 * (g * lines + i) + byte)]);
          uint16_t scale, min;
          std::memcpy(&scale, block + lines * line_bytes + 2 * lane, 2);
          std::memcpy(&min, block + lines * line_bytes + 2 * (rows + lane), 2);
          ASSERT_EQ(scale, p.scales[size_t(row * groups + g)]);
          ASSERT_EQ(min, p.mins[size_t(row * groups + g)]);
        }
    }
  Int4Problem odd = make(1, 20, 64, 32, rng);
  EXPECT_FALSE(int4_row_blocks_fit(odd.weights(), 16));  // 20 rows
  EXPECT_FALSE(int4_row_blocks_fit(odd.weights(), 8));
  std::vector<uint8_t> blocks(4096);
  EXPECT_THROW(pack_int4_row_blocks(odd.weights(), 16, blocks.data()), std::invalid_argument);
  odd = make(1, 24, 64, 32, rng);
  EXPECT_TRUE(int4_row_blocks_fit(odd.weights(), 8));
  EXPECT_FALSE(int4_row_blocks_fit(odd.weights(), 16));
  EXPECT_FALSE(int4_row_blocks_fit(odd.weights(), 4));  // 8 or 16 rows only
  odd = make(1, 16, 192, 96, rng);
  EXPECT_FALSE(int4_row_blocks_fit(odd.weights(), 16));  // groups of 96
}

// Decoding from row blocks of 8 and 16 rows gives the reference's products, for every group they
// take, with and without the panel copy beside them, at k = 576 (SmolLM2's width) and others.
TEST(Int4, DecodingFromRowBlocksMatchesTheReference) {
  Rng rng(29);
  for (int64_t rows : {8, 16})
    for (int64_t group : {32, 64, 128, 256})
      for (int64_t n : {16, 48, 80})
        for (int64_t k : {int64_t(256), int64_t(576), int64_t(1536), 3 * group}) {
          if (k % group) continue;
          SCOPED_TRACE(::testing::Message() << rows << " rows, group " << group << " n " << n << " k " << k);
          const Int4Problem p = make(1, n, k, group, rng);
          DecodeInputs d = decode_inputs(p);
          std::vector<float> expected(static_cast<size_t>(n));
          gemm_q4s8_variants().front().fn(1, d.q.data(), &d.a_scale, d.sums.data(), p.weights(), p.bias.data(),
                                          expected.data(), n);
          std::vector<uint8_t> blocks(size_t(n / rows * int4_row_block_bytes(k, group, rows)));
          pack_int4_row_blocks(p.weights(), rows, blocks.data());
          for (bool with_panels : {false, true}) {
            if (with_panels && k % 64) continue;
            Int4Weights w = p.weights();
            w.row_blocks = blocks.data();
            w.block_rows = rows;
            if (with_panels) w.panels = d.panels.data();
            if (with_panels && group == 32) w.panel_scales = d.panel_scales.data();
            testing::for_each_variant(gemm_q4s8_variants(), [&](const auto& variant) {
              std::vector<float> out(static_cast<size_t>(n));
              variant.fn(1, d.q.data(), &d.a_scale, d.sums.data(), w, p.bias.data(), out.data(), n);
              for (size_t e = 0; e < out.size(); ++e)
                ASSERT_NEAR(out[e], expected[e], 1e-6f * float(k) * (std::fabs(expected[e]) + 1.f))
                    << "element " << e << (with_panels ? ", panels beside" : "");
            });
          }
        }
}

// At the largest products the row-block kernels' integer sums stay exact: every nibble 15 against
// activations of -128 and 127 (the VNNI kernel sums the high nibbles at 16 x their value, a group
// of 256 reaching 128 x 240 x 128 in a lane), and a scale of 1 with no min, so that the output is
// the integer dot product itself, exact in f32 (|sum| <= 15 x 128 x 512 < 2^24).
TEST(Int4, RowBlockSumsStayExactAtTheExtremes) {
  Rng rng(31);
  for (int64_t rows : {8, 16})
    for (int64_t group : {32, 64, 128, 256}) {
      SCOPED_TRACE(::testing::Message() << rows << " rows, group " << group);
      const int64_t n = 32, k = 2 * group;
      Int4Problem p = make(1, n, k, group, rng);
      std::fill(p.q.begin(), p.q.end(), uint8_t(15));
      pack_int4_nibbles(p.q.data(), n, k, p.nibbles.data());
      std::fill(p.scales.begin(), p.scales.end(), f32_to_f16(1.f));
      std::fill(p.mins.begin(), p.mins.end(), f32_to_f16(0.f));
      std::fill(p.bias.begin(), p.bias.end(), 0.f);
      for (int8_t a : {int8_t(-128), int8_t(127)}) {
        const std::vector<int8_t> q(static_cast<size_t>(k), a);
        const std::vector<int32_t> sums(static_cast<size_t>(k / group), int32_t(a) * int32_t(group));
        const float a_scale = 1.f, expected = 15.f * float(a) * float(k);
        std::vector<uint8_t> blocks(size_t(n / rows * int4_row_block_bytes(k, group, rows)));
        pack_int4_row_blocks(p.weights(), rows, blocks.data());
        Int4Weights w = p.weights();
        w.row_blocks = blocks.data();
        w.block_rows = rows;
        testing::for_each_variant(gemm_q4s8_variants(), [&](const auto& variant) {
          std::vector<float> out(static_cast<size_t>(n));
          variant.fn(1, q.data(), &a_scale, sums.data(), w, p.bias.data(), out.data(), n);
          for (size_t e = 0; e < out.size(); ++e) ASSERT_EQ(out[e], expected) << "element " << e << ", activations " << int(a);
        });
      }
    }
}

// The decode layout's form follows the ISA: 16-row blocks where the VNNI kernel runs, 8-row ones
// where the AVX2 kernel does, when they fit; panels otherwise where k % 64 == 0, else the input's
// rows. The blocks alone hold everything their kernel reads (the input's scales and mins
// overwritten, the products stay).
TEST(Int4, TheDecodeLayoutTakesTheRowBlocksOfTheKernelThatRuns) {
  Rng rng(30);
  Int4Problem p = make(1, 32, 576, 64, rng);
  EXPECT_EQ(int4_decode_form(p.weights(), Isa::vnni), Int4DecodeForm::row_blocks_16);
  EXPECT_EQ(int4_decode_form(p.weights(), Isa::amx), Int4DecodeForm::row_blocks_16);
  EXPECT_EQ(int4_decode_form(p.weights(), Isa::avx512), Int4DecodeForm::row_blocks_8);
  EXPECT_EQ(int4_decode_form(p.weights(), Isa::avx2), Int4DecodeForm::row_blocks_8);
  EXPECT_EQ(int4_decode_form(p.weights(), Isa::ref), Int4DecodeForm::panels);
  EXPECT_EQ(int4_decode_form(make(1, 40, 576, 64, rng).weights(), Isa::vnni), Int4DecodeForm::panels);  // 40 rows
  EXPECT_EQ(int4_decode_form(make(1, 40, 576, 64, rng).weights(), Isa::avx2), Int4DecodeForm::row_blocks_8);
  EXPECT_EQ(int4_decode_form(make(1, 36, 576, 64, rng).weights(), Isa::avx2), Int4DecodeForm::panels);  // 36 rows
  EXPECT_EQ(int4_decode_form(make(1, 36, 96, 32, rng).weights(), Isa::vnni), Int4DecodeForm::rows);

  for (const auto& [form, rows, isa] : {std::tuple{Int4DecodeForm::row_blocks_8, int64_t(8), Isa::avx2},
                                       std::tuple{Int4DecodeForm::row_blocks_16, int64_t(16), Isa::vnni}}) {
    SCOPED_TRACE(::testing::Message() << rows << " rows");
    Int4Problem q = p;
    const Int4DecodeLayout layout = make_int4_decode_layout(q.weights(), form);
    ASSERT_NE(layout.weights.row_blocks, nullptr);
    EXPECT_EQ(layout.weights.block_rows, rows);
    EXPECT_EQ(static_cast<const void*>(layout.weights.row_blocks), static_cast<const void*>(layout.memory.data()));
    EXPECT_EQ(layout.memory.size(), size_t(32 / rows * int4_row_block_bytes(576, 64, rows)));
    EXPECT_EQ(layout.weights.panels, nullptr);
    DecodeInputs d = decode_inputs(q);
    std::vector<float> expected(32), out(32);
    gemm_q4s8_variants().front().fn(1, d.q.data(), &d.a_scale, d.sums.data(), q.weights(), q.bias.data(),
                                    expected.data(), 32);
    if (active_isa() < isa) continue;  // no kernel here that reads these blocks
    std::fill(q.scales.begin(), q.scales.end(), uint16_t(0x7c00));
    std::fill(q.mins.begin(), q.mins.end(), uint16_t(0x7c00));
    // The variant of the level the blocks are made for (AVX2's, or VNNI's without GFNI).
    const auto variants = gemm_q4s8_variants();
    const auto& variant = *std::find_if(variants.begin(), variants.end(), [&](const auto& v) { return v.isa == isa; });
    ASSERT_EQ(variant.isa, isa);
    variant.fn(1, d.q.data(), &d.a_scale, d.sums.data(), layout.weights, q.bias.data(), out.data(), 32);
    for (size_t e = 0; e < out.size(); ++e)
      ASSERT_NEAR(out[e], expected[e], 1e-6f * 576.f * (std::fabs(expected[e]) + 1.f)) << "element " << e;
  }
}

// int4 x f32: the reference equals the f32 matmul against the dequantized weights up to float
// rounding; every variant agrees with the reference within a bound scaled by K.
TEST(Int4, F32ActivationsDequantizeOnTheFly) {
  Rng rng(23);
  for (int64_t group : {32, 128})
    for (int64_t m : {1, 3, 5})
      for (int64_t n : {1, 9})
        for (int64_t k : {group, 3 * group}) {
          SCOPED_TRACE(::testing::Message() << "group " << group << " m " << m << " n " << n << " k " << k);
          const Int4Problem p = make(m, n, k, group, rng);
          std::vector<float> expected(static_cast<size_t>(m * n));
          gemm_q4f32_variants().front().fn(m, p.x.data(), p.weights(), p.bias.data(), expected.data(), n);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t c = 0; c < n; ++c) {
              double exact = p.bias[size_t(c)], magnitude = std::fabs(p.bias[size_t(c)]);
              for (int64_t j = 0; j < k; ++j) {
                exact += double(p.x[size_t(i * k + j)]) * p.weight(c, j);
                magnitude += std::fabs(double(p.x[size_t(i * k + j)])) * (15 * 0.02 + 0.15);
              }
              ASSERT_NEAR(expected[size_t(i * n + c)], exact, 1e-6 * double(k) * magnitude + 1e-6);
            }
          testing::for_each_variant(gemm_q4f32_variants(), [&](const auto& variant) {
            std::vector<float> out(static_cast<size_t>(m * n));
            variant.fn(m, p.x.data(), p.weights(), p.bias.data(), out.data(), n);
            for (size_t e = 0; e < out.size(); ++e)
              ASSERT_NEAR(out[e], expected[e], 1e-6f * float(k) * (std::fabs(expected[e]) + 1.f)) << "element " << e;
          });
        }
}

// The int4 quantizer: variants are bit-exact with the reference, whose integers and f16 scales
// equal the quantization floor's generic quantize() under the GPTQ convention.
TEST(Int4, QuantizerMatchesTheGptqConvention) {
  Rng rng(24);
  for (int64_t group : {32, 128})
    for (int64_t n : {1, 3}) {
      const int64_t k = 4 * group;
      Tensor w = Tensor::empty({n, k}, DType::f32);
      for (int64_t i = 0; i < w.numel(); ++i) w.mutable_data<float>()[i] = rng.normal(0.1f, 1.f);
      if (n == 3) std::fill(w.mutable_data<float>() + 2 * k, w.mutable_data<float>() + 2 * k + group, 0.f);  // zero group
      const int64_t groups = n * k / group;
      std::vector<uint8_t> nibbles(static_cast<size_t>(n * k / 2));
      std::vector<uint16_t> scales(static_cast<size_t>(groups)), mins(static_cast<size_t>(groups));
      quantize_int4_variants().front().fn(w.data<float>(), n, k, group, nibbles.data(), scales.data(), mins.data());
      QuantScheme scheme;
      scheme.bits = 4;
      scheme.is_signed = false;
      scheme.mapping = QuantMapping::affine;
      scheme.convention = QParamsConvention::gptq;
      const QParams qp = choose_qparams(w, scheme, per_group_block(w.shape(), group));
      const Tensor q = quantize(w, qp, scheme);
      for (int64_t g = 0; g < groups; ++g) {
        ASSERT_EQ(scales[size_t(g)], f32_to_f16(qp.scale.data<float>()[g]));
        ASSERT_EQ(mins[size_t(g)], f32_to_f16(-qp.zero.data<float>()[g] * qp.scale.data<float>()[g]));
      }
      for (int64_t row = 0; row < n; ++row)
        for (int64_t j = 0; j < k; ++j) {
          const uint8_t byte = nibbles[size_t(row * k / 2 + j / 32 * 16 + j % 16)];
          ASSERT_EQ(int32_t(j % 32 < 16 ? byte & 15 : byte >> 4), q.data<int32_t>()[row * k + j]) << row << "," << j;
        }
      testing::for_each_variant(quantize_int4_variants(), [&](const auto& variant) {
        std::vector<uint8_t> n2(nibbles.size());
        std::vector<uint16_t> s2(scales.size()), m2(mins.size());
        variant.fn(w.data<float>(), n, k, group, n2.data(), s2.data(), m2.data());
        EXPECT_EQ(n2, nibbles);
        EXPECT_EQ(s2, scales);
        EXPECT_EQ(m2, mins);
      });
    }
}

}  // namespace
}  // namespace shrink
