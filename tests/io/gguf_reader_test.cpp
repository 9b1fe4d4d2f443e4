// The GGUF reader against fixtures made by the PyPI gguf package (tools/make_gguf_fixtures.py):
// every metadata type, every format shrink dequantizes, and files that lie about themselves.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gguf_builder.h"
#include "shrink/io/gguf.h"
#include "test_support.h"

namespace shrink {
namespace {

using testing::GgufBuilder;

nlohmann::json manifest() {
  std::ifstream stream(testing::fixture_path("gguf/manifest.json"));
  return nlohmann::json::parse(stream);
}

GgufFile parse(const GgufBuilder& builder) { return GgufFile::parse(memory_source(builder.bytes, "crafted.gguf")); }

TEST(GgufReader, ReadsEveryMetadataType) {
  const GgufFile file = GgufFile::open(testing::fixture_path("gguf/all_types.gguf"));
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), 64u);
  EXPECT_EQ(file.data_offset() % 64, 0u);
  const auto expected = manifest()["metadata"];
  for (const auto& [key, entry] : expected.items()) {
    const GgufValue* value = file.find(key);
    ASSERT_NE(value, nullptr) << key;
    EXPECT_EQ(gguf_value_type_name(value->type), entry["type"].get<std::string>()) << key;
    const auto& v = entry["value"];
    if (v.is_string() && value->type == GgufValueType::string) EXPECT_EQ(value->text, v.get<std::string>());
    else if (key == "test.u64") EXPECT_EQ(value->as_uint(), std::stoull(v.get<std::string>()));
    else if (v.is_boolean()) EXPECT_EQ(value->integer != 0, v.get<bool>());
    else if (v.is_number_float()) EXPECT_EQ(value->as_float(), v.get<double>()) << key;
    else EXPECT_EQ(value->as_int(), v.get<int64_t>()) << key;
  }
  EXPECT_EQ(file.get_string("general.architecture"), "llama");
  const GgufValue* ints = file.find("test.array_i32");
  ASSERT_NE(ints, nullptr);
  ASSERT_EQ(ints->elements.size(), 3u);
  EXPECT_EQ(ints->elements[1].as_int(), -2);
  const GgufValue* strings = file.find("test.array_string");
  ASSERT_EQ(strings->elements.size(), 3u);
  EXPECT_EQ(strings->elements[1].text, "bc");
  EXPECT_EQ(strings->elements[2].text, "");
  const GgufValue* nested = file.find("test.array_nested");
  ASSERT_EQ(nested->elements.size(), 2u);
  EXPECT_EQ(nested->elements[0].elements.size(), 2u);
  EXPECT_EQ(nested->elements[1].elements[0].as_int(), 3);
  EXPECT_EQ(ints->display(), "[1, -2, 3] (3 i32)");
}

TEST(GgufReader, DequantizesLikeTheGgufPackage) {
  const GgufFile file = GgufFile::open(testing::fixture_path("gguf/all_types.gguf"));
  const auto expected_bytes = testing::read_bytes(testing::fixture_path("gguf/expected.f32"));
  const auto* expected = reinterpret_cast<const float*>(expected_bytes.data());
  const auto tensors = manifest()["tensors"];
  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (const auto& entry : tensors) {
    const std::string name = entry["name"];
    SCOPED_TRACE(name);
    const GgufTensorInfo* info = file.find_tensor(name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->type.name, entry["type"].get<std::string>());
    EXPECT_EQ(info->shape.dims(), entry["shape"].get<std::vector<int64_t>>());
    ASSERT_TRUE(file.can_dequantize(*info));
    const Tensor values = file.to_f32(*info);
    const float* actual = values.data<float>();
    const int64_t offset = entry["expected_offset"];
    for (int64_t i = 0; i < values.numel(); ++i) {
      const float want = expected[offset + i];
      if (std::isinf(want)) {
        EXPECT_EQ(actual[i], want);
      } else {
        ASSERT_NEAR(actual[i], want, 1e-6f * std::fabs(want)) << "element " << i;
      }
    }
  }
}

TEST(GgufReader, ViewsPlainTensorsWithoutCopying) {
  const GgufFile file = GgufFile::open(testing::fixture_path("gguf/all_types.gguf"));
  const Tensor view = file.view(*file.find_tensor("plain.f16"));
  EXPECT_EQ(view.dtype(), DType::f16);
  EXPECT_FALSE(view.writable());
  EXPECT_EQ(view.shape(), Shape({2, 3, 8}));
  EXPECT_THROW(file.view(*file.find_tensor("random.q4_k")), UnsupportedError);
}

TEST(GgufReader, RejectsFilesThatLie) {
  auto expect_format_error = [](const GgufBuilder& builder, const std::string& fragment) {
    try {
      parse(builder);
      ADD_FAILURE() << "accepted a file that should fail with: " << fragment;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_format_error(GgufBuilder().put<uint32_t>(0x12345678).put<uint32_t>(3), "bad magic");
  expect_format_error(GgufBuilder().header(0, 0, 7), "unknown GGUF version 7");
  EXPECT_THROW(parse(GgufBuilder().header(0, 0, 1)), UnsupportedError);
  expect_format_error(GgufBuilder().header(UINT64_MAX, 0), "tensor count");
  expect_format_error(GgufBuilder().header(0, uint64_t(1) << 60), "metadata count");
  expect_format_error(GgufBuilder().header(0, 1).put<uint64_t>(uint64_t(1) << 40).zeros(16), "file ends inside a metadata key");
  expect_format_error(GgufBuilder().header(0, 1).string("k").put<uint32_t>(99), "unknown metadata value type 99");
  expect_format_error(GgufBuilder().header(0, 1).string("k").put<uint32_t>(9).put<uint32_t>(0).put<uint64_t>(uint64_t(1) << 50),
                      "cannot fit");
  expect_format_error(GgufBuilder().header(0, 1).string("k").put<uint32_t>(7).put<uint8_t>(2), "neither 0 nor 1");
  expect_format_error(GgufBuilder().header(0, 2).kv_u32("a", 1).kv_u32("a", 2), "duplicate metadata key");
  expect_format_error(GgufBuilder().header(0, 1).kv_u32("general.alignment", 3), "power of two");
  expect_format_error(GgufBuilder().header(0, 1).kv_u32("general.alignment", 0), "power of two");
  GgufBuilder deep;  // arrays of arrays nested 9 deep
  deep.header(0, 1).string("deep");
  deep.put<uint32_t>(9);
  for (int i = 0; i < 9; ++i) deep.put<uint32_t>(9).put<uint64_t>(1);
  deep.put<uint32_t>(0).put<uint64_t>(0);
  expect_format_error(deep, "nested deeper");

  auto with_tensor = [](std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data = 64) {
    GgufBuilder b;
    b.header(1, 0).tensor("t", ne, type, offset).align().zeros(data);
    return b;
  };
  EXPECT_NO_THROW(parse(with_tensor({16}, 0, 0)));
  expect_format_error(with_tensor({}, 0, 0), "0 dimensions");
  expect_format_error(with_tensor({1, 1, 1, 1, 1}, 0, 0), "5 dimensions");
  expect_format_error(with_tensor({uint64_t(1) << 63}, 0, 0), "does not fit int64");
  expect_format_error(with_tensor({uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0), "too many elements");
  expect_format_error(with_tensor({16}, 4, 0), "unknown ggml type 4");
  expect_format_error(with_tensor({48}, 2, 0), "not a multiple of Q4_0's block of 32");
  expect_format_error(with_tensor({17}, 0, 0), "runs past the end");
  expect_format_error(with_tensor({16}, 0, 16), "not aligned");
  expect_format_error(with_tensor({16}, 0, uint64_t(1) << 62), "runs past the end");
  expect_format_error(with_tensor({uint64_t(1) << 62}, 0, 0), "too large");
  GgufBuilder overlapping;
  overlapping.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).align().zeros(128);
  expect_format_error(overlapping, "overlap");
  GgufBuilder duplicate;
  duplicate.header(2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).align().zeros(128);
  expect_format_error(duplicate, "duplicate tensor name");
}

TEST(GgufReader, EveryTruncationIsAFormatError) {
  const auto bytes = testing::read_bytes(testing::fixture_path("gguf/all_types.gguf"));
  // Cuts inside the padding after the last tensor lose nothing; every shorter cut loses data.
  const GgufFile whole = GgufFile::parse(memory_source(bytes, "whole"));
  uint64_t end_of_data = 0;
  for (const auto& info : whole.tensors()) end_of_data = std::max(end_of_data, whole.data_offset() + info.offset + info.bytes);
  ASSERT_LE(end_of_data, bytes.size());
  for (size_t length = 0; length < end_of_data; ++length) {
    std::vector<std::byte> cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(length));
    EXPECT_THROW(GgufFile::parse(memory_source(std::move(cut), "cut.gguf")), FormatError) << "length " << length;
  }
}

TEST(GgufReader, UnsupportedFormatsSayWhich) {
  GgufBuilder b;
  b.header(1, 0).tensor("iq", {256}, 16, 0).align().zeros(96);
  const GgufFile file = parse(b);
  EXPECT_FALSE(file.can_dequantize(file.tensors()[0]));
  try {
    file.to_f32(file.tensors()[0]);
    ADD_FAILURE();
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("IQ2_XXS"), std::string::npos);
  }
}

}  // namespace
}  // namespace shrink
