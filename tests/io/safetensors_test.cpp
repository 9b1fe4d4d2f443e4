// safetensors: the writer/reader round trip, zero-copy reads, atomic writes, and headers that lie.
#include <gtest/gtest.h>

#include <cstring>

#include "shrink/io/safetensors.h"
#include "test_support.h"

namespace shrink {
namespace {

std::vector<std::byte> with_header(const std::string& json, size_t data_bytes) {
  std::vector<std::byte> bytes(8 + json.size() + data_bytes);
  const uint64_t length = json.size();
  std::memcpy(bytes.data(), &length, 8);
  std::memcpy(bytes.data() + 8, json.data(), json.size());
  return bytes;
}

SafetensorsFile parse(const std::string& json, size_t data_bytes) {
  return SafetensorsFile::parse(memory_source(with_header(json, data_bytes), "crafted.safetensors"));
}

TEST(Safetensors, RoundTripsTensorsAndMetadata) {
  testing::ScratchDir dir;
  Tensor weights = Tensor::empty({3, 4}, DType::f32);
  for (int i = 0; i < 12; ++i) weights.mutable_data<float>()[i] = float(i) * 0.5f;
  Tensor ids = Tensor::empty({5}, DType::i64);
  ids.mutable_data<int64_t>()[4] = -9;
  Tensor halves = weights.to(DType::bf16);
  Tensor transposed = weights.transpose(0, 1);  // written contiguous
  const std::string path = dir.file("model.safetensors");
  save_safetensors(path, {{"w", weights}, {"ids", ids}, {"h", halves}, {"wt", transposed}},
                   {{"shrink.technique", "none"}, {"note", "ünïcode"}});
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.header_bytes() % 8, 0u);
  ASSERT_EQ(file.entries().size(), 4u);
  EXPECT_EQ(file.metadata().size(), 2u);
  const Tensor w = file.tensor("w");
  EXPECT_FALSE(w.writable());  // a view into the mapping
  EXPECT_EQ(w.shape(), Shape({3, 4}));
  EXPECT_EQ(std::memcmp(w.raw_data(), weights.raw_data(), 48), 0);
  EXPECT_EQ(file.tensor("ids").data<int64_t>()[4], -9);
  EXPECT_EQ(file.tensor("h").to(DType::f32).data<float>()[5], 2.5f);
  const Tensor wt = file.tensor("wt");
  EXPECT_EQ(wt.shape(), Shape({4, 3}));
  EXPECT_EQ(wt.data<float>()[1], 2.f);  // weights[1][0]
  EXPECT_THROW(file.tensor("missing"), UsageError);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"model.safetensors"});  // no temporaries left
}

TEST(Safetensors, WriterRefusesBadInputWithoutLeavingFiles) {
  testing::ScratchDir dir;
  Tensor t = Tensor::empty({2}, DType::f32);
  EXPECT_THROW(save_safetensors(dir.file("a.safetensors"), {{"x", t}, {"x", t}}), UsageError);
  EXPECT_THROW(save_safetensors(dir.file("a.safetensors"), {{"", t}}), UsageError);
  EXPECT_THROW(save_safetensors(dir.file("a.safetensors"), {{"__metadata__", t}}), UsageError);
  EXPECT_THROW(save_safetensors(dir.file("missing/a.safetensors"), {{"x", t}}), IoError);
  // Names and metadata go into JSON, which is UTF-8 (found by fuzzing: nlohmann's type_error escaped).
  EXPECT_THROW(save_safetensors(dir.file("a.safetensors"), {{"bad\xff", t}}), UsageError);
  EXPECT_THROW(save_safetensors(dir.file("a.safetensors"), {{"x", t}}, {{"note", "bad\xff"}}), UsageError);
  EXPECT_TRUE(dir.list().empty());
}

TEST(Safetensors, RejectsHeadersThatLie) {
  auto expect_error = [](const std::string& json, size_t data, const std::string& fragment) {
    try {
      parse(json, data);
      ADD_FAILURE() << "accepted: " << json;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  EXPECT_NO_THROW(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8));
  EXPECT_NO_THROW(parse(R"({})", 0));
  expect_error("[1,2]", 0, "not a JSON object");
  expect_error("{\"a\":", 0, "not valid JSON");
  expect_error(R"({"a":{"dtype":"F32","shape":[2]}})", 8, "needs");
  expect_error(R"({"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}})", 8, "F99");
  expect_error(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "non-negative");
  expect_error(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8, "non-negative");
  expect_error(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "needs 12 bytes");
  expect_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 8, "outside");
  expect_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "outside");
  expect_error(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", 8, "too many");
  expect_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
               16, "overlap");
  expect_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
               16, "overlap");
  expect_error(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4, "9 dimensions");
  expect_error(R"({"__metadata__":{"k":1}})", 0, "not a string");
  expect_error(R"({"__metadata__":[1]})", 0, "not a JSON object");
  // A header length larger than the file, or past the 100 MB cap.
  auto bytes = with_header("{}", 0);
  const uint64_t huge = uint64_t(1) << 62;
  std::memcpy(bytes.data(), &huge, 8);
  EXPECT_THROW(SafetensorsFile::parse(memory_source(bytes, "huge")), FormatError);
  const uint64_t past_end = 3;
  std::memcpy(bytes.data(), &past_end, 8);
  EXPECT_THROW(SafetensorsFile::parse(memory_source(bytes, "past")), FormatError);
  EXPECT_THROW(SafetensorsFile::parse(memory_source({}, "empty")), FormatError);
}

TEST(Safetensors, EveryTruncationIsAnError) {
  testing::ScratchDir dir;
  Tensor t = Tensor::empty({3, 5}, DType::f16);
  save_safetensors(dir.file("m.safetensors"), {{"a", t}, {"b", t}}, {{"k", "v"}});
  const auto bytes = testing::read_bytes(dir.file("m.safetensors"));
  for (size_t length = 0; length < bytes.size(); ++length) {
    std::vector<std::byte> cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(length));
    EXPECT_THROW(SafetensorsFile::parse(memory_source(std::move(cut), "cut")), FormatError) << length;
  }
}

}  // namespace
}  // namespace shrink
