// The real assets (tools/fetch_assets.py): SmolLM2's GGUF dequantizes like the PyPI gguf package
// (tests/fixtures/smollm2_reference.json, made by tools/make_smollm2_reference.py), and MiniLM's
// safetensors reads zero-copy with the published parameter count. Skipped when the assets are
// absent, unless SHRINK_REQUIRE_ASSETS=1 (scripts/test.sh sets it after fetching).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "shrink/io/gguf.h"
#include "shrink/io/inspect.h"
#include "shrink/io/safetensors.h"
#include "test_support.h"

namespace shrink {
namespace {

TEST(RealModels, SmolLM2DequantizesLikeTheGgufPackage) {
  const std::string path = testing::asset_path("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
  if (!testing::asset_present(path)) GTEST_SKIP() << "asset not fetched: " << path;
  std::ifstream stream(testing::fixture_path("smollm2_reference.json"));
  const auto reference = nlohmann::json::parse(stream);
  const GgufFile file = GgufFile::open(path);
  ASSERT_EQ(file.tensors().size(), reference["tensors"].size());
  for (const auto& entry : reference["tensors"]) {
    const std::string name = entry["name"];
    SCOPED_TRACE(name);
    const GgufTensorInfo* info = file.find_tensor(name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->type.name, entry["type"].get<std::string>());
    EXPECT_EQ(info->shape.dims(), entry["shape"].get<std::vector<int64_t>>());
    const Tensor values = file.to_f32(*info);
    const float* data = values.data<float>();
    double sum = 0, sum_squares = 0;
    for (int64_t i = 0; i < values.numel(); ++i) {
      sum += data[i];
      sum_squares += double(data[i]) * data[i];
    }
    const double want_squares = entry["sum_squares"];
    EXPECT_NEAR(sum_squares, want_squares, 1e-9 * want_squares + 1e-12);
    EXPECT_NEAR(sum, entry["sum"].get<double>(), 1e-9 * want_squares + 1e-9);
    for (const auto& sample : entry["samples"]) {
      const float want = sample[1];
      EXPECT_NEAR(data[sample[0].get<int64_t>()], want, 1e-6f * std::fabs(want)) << "element " << sample[0];
    }
  }
}

TEST(RealModels, SmolLM2InspectMatchesThePublishedModel) {
  const std::string path = testing::asset_path("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
  if (!testing::asset_present(path)) GTEST_SKIP() << "asset not fetched";
  const ModelSummary summary = summarize_model(path);
  EXPECT_EQ(summary.format, "gguf");
  EXPECT_EQ(summary.tensors.size(), 272u);  // 30 blocks x 9 + embedding + final norm
  EXPECT_NEAR(double(summary.total_params), 134.5e6, 0.5e6);  // "135M" (embeddings tied)
  EXPECT_EQ(summary.architecture.front(), (std::pair<std::string, std::string>{"architecture", "llama"}));
}

TEST(RealModels, MiniLMReadsZeroCopyWithThePublishedParameterCount) {
  const std::string dir = testing::asset_path("minilm");
  if (!testing::asset_present(dir + "/model.safetensors")) GTEST_SKIP() << "asset not fetched";
  const SafetensorsFile file = SafetensorsFile::open(dir + "/model.safetensors");
  const Tensor embeddings = file.tensor("embeddings.word_embeddings.weight");
  EXPECT_EQ(embeddings.shape(), Shape({30522, 384}));
  EXPECT_FALSE(embeddings.writable());
  double norm = 0;
  for (int64_t i = 0; i < 384; ++i) norm += double(embeddings.data<float>()[i]) * embeddings.data<float>()[i];
  EXPECT_GT(norm, 0.0);
  const ModelSummary summary = summarize_model(dir);
  EXPECT_EQ(summary.total_params, 22713216);  // all-MiniLM-L6-v2: 22.7M (position_ids is a buffer)
  bool has_layers = false;
  for (const auto& [key, value] : summary.architecture) has_layers |= key == "layers" && value == "6";
  EXPECT_TRUE(has_layers);
}

}  // namespace
}  // namespace shrink
