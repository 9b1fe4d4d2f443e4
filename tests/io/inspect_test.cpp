// ModelSummary on the committed fixtures: format detection by content, totals, HF folders.
#include <gtest/gtest.h>

#include <fstream>

#include "shrink/io/inspect.h"
#include "shrink/io/safetensors.h"
#include "test_support.h"

namespace shrink {
namespace {

TEST(Inspect, SummarizesGguf) {
  const ModelSummary summary = summarize_model(testing::fixture_path("gguf/all_types.gguf"));
  EXPECT_EQ(summary.format, "gguf");
  EXPECT_EQ(summary.format_version, "3");
  EXPECT_EQ(summary.tensors.size(), 15u);
  EXPECT_EQ(summary.total_params, 5135);
  uint64_t bytes = 0;
  for (const auto& t : summary.tensors) bytes += t.bytes;
  EXPECT_EQ(summary.total_tensor_bytes, bytes);
  EXPECT_NEAR(summary.bits_per_weight(), 8.0 * double(bytes) / 5135.0, 1e-9);
  const auto json = to_json(summary);
  EXPECT_EQ(json["totals"]["tensors"], 15);
  EXPECT_EQ(json["metadata"]["test.array_string"]["length"], 3);
}

TEST(Inspect, ReadsHuggingFaceFoldersAndCountsBuffersApart) {
  testing::ScratchDir dir;
  Tensor weight = Tensor::empty({4, 8}, DType::bf16), ids = Tensor::empty({16}, DType::i64);
  save_safetensors(dir.file("model.safetensors"), {{"dense.weight", weight}, {"position_ids", ids}});
  std::ofstream(dir.file("config.json")) << R"({"architectures":["BertModel"],"num_hidden_layers":2,"hidden_size":8})";
  const ModelSummary summary = summarize_model(dir.path());
  EXPECT_EQ(summary.format, "safetensors");
  EXPECT_EQ(summary.total_params, 32);
  EXPECT_EQ(summary.total_buffer_elements, 16);
  EXPECT_DOUBLE_EQ(summary.bits_per_weight(), 16.0);
  ASSERT_FALSE(summary.architecture.empty());
  EXPECT_EQ(summary.architecture[0].second, "BertModel");
}

TEST(Inspect, ReadsShardedCheckpoints) {
  testing::ScratchDir dir;
  Tensor a = Tensor::empty({4, 8}, DType::f32), b = Tensor::empty({16}, DType::f16);
  save_safetensors(dir.file("model-00001-of-00002.safetensors"), {{"layer.0.weight", a}});
  save_safetensors(dir.file("model-00002-of-00002.safetensors"), {{"layer.1.weight", a}, {"norm.weight", b}});
  auto write_index = [&](const std::string& map) {
    std::ofstream(dir.file("model.safetensors.index.json")) << R"({"metadata": {"total_size": 320}, "weight_map": )" << map << "}";
  };
  write_index(R"({"layer.0.weight": "model-00001-of-00002.safetensors", "layer.1.weight": "model-00002-of-00002.safetensors",
                  "norm.weight": "model-00002-of-00002.safetensors"})");
  const ModelSummary summary = summarize_model(dir.path());
  EXPECT_EQ(summary.shards, 2);
  EXPECT_EQ(summary.tensors.size(), 3u);
  EXPECT_EQ(summary.total_params, 32 + 32 + 16);
  // A tensor the index places in the wrong shard, a missing shard, a path outside the folder.
  write_index(R"({"norm.weight": "model-00001-of-00002.safetensors"})");
  EXPECT_THROW(summarize_model(dir.path()), FormatError);
  write_index(R"({"norm.weight": "model-00003-of-00003.safetensors"})");
  EXPECT_THROW(summarize_model(dir.path()), IoError);
  write_index(R"({"norm.weight": "../elsewhere.safetensors"})");
  EXPECT_THROW(summarize_model(dir.path()), FormatError);
  write_index(R"([1, 2])");
  EXPECT_THROW(summarize_model(dir.path()), FormatError);
}

TEST(Inspect, RefusesWhatItCannotRead) {
  testing::ScratchDir dir;
  std::ofstream(dir.file("notes.txt")) << "hello, this is not a model";
  EXPECT_THROW(summarize_model(dir.file("notes.txt")), FormatError);
  EXPECT_THROW(summarize_model(dir.file("absent.gguf")), IoError);
  EXPECT_THROW(summarize_model(dir.path()), UsageError);  // a folder without model.safetensors
}

}  // namespace
}  // namespace shrink
