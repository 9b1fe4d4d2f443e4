// The quantization primitives: block sizes, ranges, each convention against hand-computed values
// and (ggml) against the PyPI gguf package's quantizers, and the round-trip error bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "shrink/core/half.h"
#include "shrink/core/rng.h"
#include "shrink/io/gguf.h"
#include "shrink/quant/scheme.h"
#include "test_support.h"

namespace shrink {
namespace {

Tensor from_values(const Shape& shape, std::vector<float> values) {
  Tensor t = Tensor::empty(shape, DType::f32);
  std::memcpy(t.mutable_raw_data(), values.data(), values.size() * 4);
  return t;
}

QuantScheme make(int bits, bool is_signed, QuantMapping mapping, QParamsConvention convention) {
  QuantScheme s;
  s.bits = bits;
  s.is_signed = is_signed;
  s.mapping = mapping;
  s.convention = convention;
  return s;
}

TEST(QuantScheme, RangesAndValidation) {
  QuantScheme s = make(8, true, QuantMapping::symmetric, QParamsConvention::pytorch);
  EXPECT_EQ(s.quant_min(), -128);
  EXPECT_EQ(s.quant_max(), 127);
  s.reduce_range = true;
  EXPECT_EQ(s.quant_min(), -64);
  EXPECT_EQ(s.quant_max(), 63);
  s = make(4, false, QuantMapping::affine, QParamsConvention::gptq);
  EXPECT_EQ(s.quant_max(), 15);
  EXPECT_EQ(s.describe(), "uint4 affine (gptq)");
  EXPECT_EQ(make(8, true, QuantMapping::symmetric, QParamsConvention::ggml).quant_min(), -127);  // Q8_0
  EXPECT_THROW(make(1, true, QuantMapping::symmetric, QParamsConvention::pytorch).validate(), UsageError);
  EXPECT_THROW(make(9, true, QuantMapping::symmetric, QParamsConvention::pytorch).validate(), UsageError);
  EXPECT_THROW(make(4, true, QuantMapping::affine, QParamsConvention::gptq).validate(), UsageError);
}

TEST(QuantScheme, BlockSizes) {
  const Shape shape({6, 256});
  EXPECT_EQ(per_tensor_block(shape), (std::vector<int64_t>{6, 256}));
  EXPECT_EQ(per_channel_block(shape, 0), (std::vector<int64_t>{1, 256}));
  EXPECT_EQ(per_channel_block(shape, -1), (std::vector<int64_t>{6, 1}));
  EXPECT_EQ(per_group_block(shape, 128), (std::vector<int64_t>{1, 128}));
  EXPECT_THROW(per_group_block(shape, 100), UsageError);
  EXPECT_THROW(per_channel_block(shape, 2), UsageError);
  const Tensor x = Tensor::empty(shape, DType::f32);
  EXPECT_EQ(choose_qparams(x, QuantScheme{}, per_group_block(shape, 64)).scale.shape(), Shape({6, 4}));
  EXPECT_THROW(choose_qparams(x, QuantScheme{}, {4, 256}), UsageError);  // 4 does not divide 6
}

TEST(QParams, PyTorchConvention) {
  const Tensor x = from_values({3}, {-1.f, 0.5f, 2.f});
  QuantScheme affine = make(8, false, QuantMapping::affine, QParamsConvention::pytorch);
  QParams qp = choose_qparams(x, affine, per_tensor_block(x.shape()));
  EXPECT_FLOAT_EQ(qp.scale.data<float>()[0], 3.f / 255.f);
  EXPECT_EQ(qp.zero.data<float>()[0], 85.f);
  const Tensor q = quantize(x, qp, affine);
  EXPECT_EQ(q.data<int32_t>()[0], 0);
  EXPECT_EQ(q.data<int32_t>()[2], 255);
  QuantScheme symmetric = make(8, true, QuantMapping::symmetric, QParamsConvention::pytorch);
  qp = choose_qparams(x, symmetric, per_tensor_block(x.shape()));
  EXPECT_FLOAT_EQ(qp.scale.data<float>()[0], 2.f / 127.5f);
  EXPECT_EQ(qp.zero.data<float>()[0], 0.f);
  symmetric.is_signed = false;
  EXPECT_EQ(choose_qparams(x, symmetric, per_tensor_block(x.shape())).zero.data<float>()[0], 128.f);
}

TEST(QParams, GptqConventionIncludingItsQuirks) {
  const Tensor x = from_values({1, 3}, {-1.f, 0.5f, 2.f});
  QuantScheme affine = make(4, false, QuantMapping::affine, QParamsConvention::gptq);
  QParams qp = choose_qparams(x, affine, per_channel_block(x.shape(), 0));
  EXPECT_FLOAT_EQ(qp.scale.data<float>()[0], 0.2f);
  EXPECT_EQ(qp.zero.data<float>()[0], 5.f);
  const Tensor q = quantize(x, qp, affine);
  EXPECT_EQ(q.data<int32_t>()[0], 0);
  EXPECT_EQ(q.data<int32_t>()[1], 7);  // round(2.5) = 2 (half to even, as torch.round) + 5
  EXPECT_EQ(q.data<int32_t>()[2], 15);
  QuantScheme symmetric = make(4, false, QuantMapping::symmetric, QParamsConvention::gptq);
  qp = choose_qparams(x, symmetric, per_channel_block(x.shape(), 0));
  EXPECT_FLOAT_EQ(qp.scale.data<float>()[0], 4.f / 15.f);
  EXPECT_EQ(qp.zero.data<float>()[0], 8.f);
  // All non-negative: the reference leaves min at 0, so half the grid goes unused.
  const Tensor positive = from_values({1, 2}, {0.5f, 2.f});
  qp = choose_qparams(positive, symmetric, per_channel_block(positive.shape(), 0));
  EXPECT_FLOAT_EQ(qp.scale.data<float>()[0], 2.f / 15.f);
  const Tensor zeros = Tensor::zeros({1, 4}, DType::f32);
  EXPECT_FLOAT_EQ(choose_qparams(zeros, affine, per_channel_block(zeros.shape(), 0)).scale.data<float>()[0], 2.f / 15.f);
}

// shrink's ggml convention against the gguf package's Q4_0, Q4_1 and Q8_0 quantizers (which match
// ggml-quants.c bit for bit): same integers and the same fp16 scales and mins.
TEST(QParams, GgmlConventionMatchesTheGgufPackage) {
  const auto source_bytes = testing::read_bytes(testing::fixture_path("gguf/sources.f32"));
  const auto* sources = reinterpret_cast<const float*>(source_bytes.data());
  const GgufFile file = GgufFile::open(testing::fixture_path("gguf/all_types.gguf"));
  struct Case { const char* tensor; int source_index; QuantScheme scheme; int block_bytes; bool has_min; };
  const Case cases[] = {
      {"quantized.q4_0", 0, make(4, false, QuantMapping::symmetric, QParamsConvention::ggml), 18, false},
      {"quantized.q4_1", 1, make(4, false, QuantMapping::affine, QParamsConvention::ggml), 20, true},
      {"quantized.q8_0", 4, make(8, true, QuantMapping::symmetric, QParamsConvention::ggml), 34, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tensor);
    const Tensor x = from_values({3, 64}, std::vector<float>(sources + c.source_index * 192, sources + (c.source_index + 1) * 192));
    const QParams qp = choose_qparams(x, c.scheme, per_group_block(x.shape(), 32));
    const Tensor q = quantize(x, qp, c.scheme);
    const auto bytes = file.tensor_bytes(*file.find_tensor(c.tensor));
    for (int block = 0; block < 6; ++block) {
      const auto* b = reinterpret_cast<const uint8_t*>(bytes.data()) + block * c.block_bytes;
      uint16_t d, m;
      std::memcpy(&d, b, 2);
      EXPECT_EQ(f32_to_f16(qp.scale.data<float>()[block]), d) << "block " << block;
      if (c.has_min) {
        std::memcpy(&m, b + 2, 2);
        EXPECT_EQ(f32_to_f16(qp.min.data<float>()[block]), m);
      }
      const uint8_t* qs = b + (c.has_min ? 4 : 2);
      for (int j = 0; j < 32; ++j) {
        const int32_t ours = q.data<int32_t>()[block * 32 + j];
        const int32_t theirs = c.scheme.bits == 8 ? int32_t(int8_t(qs[j])) : (j < 16 ? qs[j] & 15 : qs[j - 16] >> 4);
        ASSERT_EQ(ours, theirs) << "block " << block << " element " << j;
      }
    }
  }
}

TEST(QParams, RoundTripErrorIsBoundedForEveryScheme) {
  Rng rng(17);
  const Shape shape({8, 128});
  Tensor x = Tensor::empty(shape, DType::f32);
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<float>()[i] = rng.normal(0.3f, 1.f);
  for (int convention = 0; convention < 3; ++convention)
    for (QuantMapping mapping : {QuantMapping::symmetric, QuantMapping::affine})
      for (bool is_signed : {false, true})
        for (int bits = 2; bits <= 8; ++bits) {
          QuantScheme s = make(bits, is_signed, mapping, QParamsConvention(convention));
          try {
            s.validate();
          } catch (const UsageError&) {
            continue;  // a combination the convention does not have
          }
          if (s.convention == QParamsConvention::gptq && mapping == QuantMapping::symmetric) continue;  // the quirk above
          for (const auto& block : {per_tensor_block(shape), per_channel_block(shape, 0), per_channel_block(shape, 1), per_group_block(shape, 32)}) {
            SCOPED_TRACE(s.describe() + " block " + Shape(block).to_string());
            const QParams qp = choose_qparams(x, s, block);
            const Tensor q = quantize(x, qp, s);
            const Tensor back = dequantize(q, qp);
            for (int64_t i = 0; i < x.numel(); ++i) {
              ASSERT_GE(q.data<int32_t>()[i], s.quant_min());
              ASSERT_LE(q.data<int32_t>()[i], s.quant_max());
              const int64_t row = i / 128, col = i % 128;
              const int64_t b = row / block[0] * (128 / block[1]) + col / block[1];
              const float step = std::fabs(qp.scale.data<float>()[b]);
              // ggml's Q4_0 maps -max one step short; everything else rounds to the nearest level.
              const float bound = (s.convention == QParamsConvention::ggml ? 1.0f : 0.5f) * step * 1.0001f + 1e-6f;
              ASSERT_LE(std::fabs(back.data<float>()[i] - x.data<float>()[i]), bound) << "element " << i;
            }
          }
        }
}

}  // namespace
}  // namespace shrink
