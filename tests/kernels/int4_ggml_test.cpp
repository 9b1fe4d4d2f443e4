// llama.cpp's Q4_0 / Q4_1 blocks as int4 weights: the converted weights equal ggml's
// dequantization exactly, and the real SmolLM2 tensors (Q4_1) run through the int4 kernels with
// the result of an f32 matmul against the gguf reader's dequantized weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <sys/stat.h>

#include "kernel_test_support.h"
#include "shrink/core/half.h"
#include "shrink/core/rng.h"
#include "shrink/io/gguf.h"
#include "test_support.h"

namespace shrink {
namespace {

float weight(const Int4Storage& w, int64_t c, int64_t j) {
  const uint8_t byte = w.nibbles[size_t(c * w.k / 2 + j / 32 * 16 + j % 16)];
  const int64_t g = c * (w.k / w.group) + j / w.group;
  return float(j % 32 < 16 ? byte & 15 : byte >> 4) * f16_to_f32(w.scales[size_t(g)]) + f16_to_f32(w.mins[size_t(g)]);
}

TEST(Int4Ggml, ConvertedBlocksDequantizeExactlyLikeGgml) {
  Rng rng(31);
  const int64_t n = 5, k = 96;
  std::vector<float> x(static_cast<size_t>(n * k));
  for (auto& v : x) v = rng.normal();
  for (bool q4_1 : {false, true}) {
    std::vector<std::byte> blocks(static_cast<size_t>(n * k / 32) * (q4_1 ? 20 : 18));
    (q4_1 ? kernels().quantize_q4_1 : kernels().quantize_q4_0)(x.data(), blocks.data(), n * k);
    std::vector<float> expected(x.size());
    (q4_1 ? kernels().dequantize_q4_1 : kernels().dequantize_q4_0)(blocks.data(), expected.data(), n * k);
    const Int4Storage w = q4_1 ? int4_from_q4_1(blocks.data(), n, k) : int4_from_q4_0(blocks.data(), n, k);
    for (int64_t c = 0; c < n; ++c)
      for (int64_t j = 0; j < k; ++j) ASSERT_EQ(weight(w, c, j), expected[size_t(c * k + j)]) << (q4_1 ? "Q4_1 " : "Q4_0 ") << c << "," << j;
  }
}

TEST(Int4Ggml, SmolLM2WeightsRunThroughTheInt4Kernels) {
  const std::string path = testing::asset_path("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    if (testing::assets_required()) FAIL() << path << " is missing";
    GTEST_SKIP() << "asset not fetched";
  }
  const GgufFile file = GgufFile::open(path);
  for (const char* name : {"blk.0.ffn_up.weight", "blk.29.ffn_down.weight", "blk.3.attn_q.weight"}) {
    SCOPED_TRACE(name);
    const GgufTensorInfo* tensor = file.find_tensor(name);
    ASSERT_NE(tensor, nullptr);
    ASSERT_EQ(tensor->type.type, GgmlType::q4_1);
    const int64_t n = tensor->shape[0], k = tensor->shape[1];
    const Int4Storage w = int4_from_q4_1(file.tensor_bytes(*tensor).data(), n, k);
    const Tensor dense = file.to_f32(*tensor);
    Rng rng(32);
    const int64_t m = 3;
    std::vector<float> x(static_cast<size_t>(m * k)), out(static_cast<size_t>(m * n)), a_scale(static_cast<size_t>(m));
    for (auto& v : x) v = rng.normal();
    kernels().gemm_q4f32(m, x.data(), w.view(), nullptr, out.data(), n);
    std::vector<int8_t> q(static_cast<size_t>(m * k));
    std::vector<int32_t> sums(static_cast<size_t>(m * k / 32));
    std::vector<float> out_s8(static_cast<size_t>(m * n));
    kernels().quantize_rows_s8(x.data(), m, k, 32, q.data(), a_scale.data(), sums.data());
    kernels().gemm_q4s8(m, q.data(), a_scale.data(), sums.data(), w.view(), nullptr, out_s8.data(), n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t c = 0; c < n; ++c) {
        double exact = 0, magnitude = 0, rounding = 0;
        for (int64_t j = 0; j < k; ++j) {
          const double wv = dense.data<float>()[c * k + j];
          exact += double(x[size_t(i * k + j)]) * wv;
          magnitude += std::fabs(double(x[size_t(i * k + j)]) * wv);
          rounding += std::fabs(wv) * a_scale[size_t(i)] * 0.5;
        }
        ASSERT_NEAR(out[size_t(i * n + c)], exact, 1e-5 * magnitude + 1e-6) << "f32 activations, " << i << "," << c;
        ASSERT_NEAR(out_s8[size_t(i * n + c)], exact, rounding + 1e-5 * magnitude) << "s8 activations, " << i << "," << c;
      }
  }
}

}  // namespace
}  // namespace shrink
