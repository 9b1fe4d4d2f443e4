// Dataset loaders: IDX parsing and its refusals, gzip (including corrupt and oversized streams),
// the real Fashion-MNIST and Austen files, character vocabularies and seeded batches.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "shrink/io/datasets.h"
#include "test_support.h"

namespace shrink {
namespace {

std::vector<std::byte> idx(std::vector<uint32_t> dims, std::vector<uint8_t> data, uint8_t type = 0x08) {
  std::vector<std::byte> bytes = {std::byte{0}, std::byte{0}, std::byte{type}, std::byte(dims.size())};
  for (uint32_t d : dims)
    for (int shift : {24, 16, 8, 0}) bytes.push_back(std::byte((d >> shift) & 0xff));
  for (uint8_t v : data) bytes.push_back(std::byte{v});
  return bytes;
}

void write_gzip(const std::string& path, const std::vector<std::byte>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(gzwrite(file, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  gzclose(file);
}

TEST(Idx, ParsesAndRefuses) {
  const Tensor t = parse_idx(idx({2, 3}, {1, 2, 3, 4, 5, 6}), "ok");
  EXPECT_EQ(t.shape(), Shape({2, 3}));
  EXPECT_EQ(t.data<uint8_t>()[5], 6);
  EXPECT_THROW(parse_idx(idx({2, 3}, {1, 2, 3}), "short"), FormatError);
  EXPECT_THROW(parse_idx(idx({2}, {1, 2}, 0x0d), "floats"), FormatError);
  auto bad_magic = idx({1}, {7});
  bad_magic[0] = std::byte{1};
  EXPECT_THROW(parse_idx(bad_magic, "magic"), FormatError);
  EXPECT_THROW(parse_idx(idx({}, {}), "rank 0"), FormatError);
  EXPECT_THROW(parse_idx(idx({0xffffffffu, 0xffffffffu, 0xffffffffu}, {}), "huge"), FormatError);
  auto cut = idx({2, 2}, {1, 2, 3, 4});
  cut.resize(9);
  EXPECT_THROW(parse_idx(cut, "cut"), FormatError);
}

TEST(Idx, ReadsGzipAndRefusesBadStreams) {
  testing::ScratchDir dir;
  const auto bytes = idx({4, 5}, std::vector<uint8_t>(20, 9));
  write_gzip(dir.file("a.gz"), bytes);
  EXPECT_EQ(read_idx(dir.file("a.gz")).shape(), Shape({4, 5}));
  testing::write_bytes(dir.file("raw"), bytes);
  EXPECT_EQ(read_idx(dir.file("raw")).numel(), 20);
  auto gz = testing::read_bytes(dir.file("a.gz"));
  gz.resize(gz.size() / 2);
  testing::write_bytes(dir.file("cut.gz"), gz);
  EXPECT_THROW(read_idx(dir.file("cut.gz")), FormatError);
  write_gzip(dir.file("big.gz"), std::vector<std::byte>(1 << 20));
  EXPECT_THROW(read_maybe_gzipped(dir.file("big.gz"), 1000), FormatError);  // refuses to inflate past the cap
}

TEST(Datasets, FashionMnistIsComplete) {
  const std::string folder = testing::asset_path("fashion-mnist");
  if (!testing::asset_present(folder + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "asset not fetched";
  for (const auto& [split, count] : {std::pair<std::string, int64_t>{"train", 60000}, {"t10k", 10000}}) {
    const ImageDataset data = load_idx_images(folder, split);
    EXPECT_EQ(data.images.shape(), Shape({count, 28, 28}));
    std::vector<int64_t> per_class(10);
    for (int64_t i = 0; i < count; ++i) per_class[data.labels.data<uint8_t>()[i]]++;
    for (int64_t c : per_class) EXPECT_EQ(c, count / 10);  // Fashion-MNIST is balanced
  }
  EXPECT_THROW(load_idx_images(folder, "validation"), UsageError);
}

TEST(Datasets, AustenSplitAndCharacters) {
  const std::string folder = testing::asset_path("austen");
  if (!testing::asset_present(folder + "/persuasion.txt")) GTEST_SKIP() << "asset not fetched";
  const AustenSplit split = load_austen(folder);
  EXPECT_GT(split.train.size(), 3'000'000u);
  EXPECT_GT(split.eval.size(), 400'000u);
  EXPECT_EQ(split.eval.rfind("Persuasion", 0), 0u);
  const CharVocabulary vocabulary(split.train);
  EXPECT_GT(vocabulary.size(), 60);
  EXPECT_LT(vocabulary.size(), 120);
  const std::string sample = split.eval.substr(1000, 200);
  EXPECT_EQ(vocabulary.decode(vocabulary.encode(sample)), sample);
  EXPECT_EQ(vocabulary.encode("\x01")[0], 0);  // unseen in training
}

TEST(Datasets, SeededBatchesCoverEverythingOnce) {
  const auto a = shuffled_batches(103, 10, 7), b = shuffled_batches(103, 10, 7), c = shuffled_batches(103, 10, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  ASSERT_EQ(a.size(), 11u);
  EXPECT_EQ(a.back().size(), 3u);
  std::vector<int64_t> all;
  for (const auto& batch : a) all.insert(all.end(), batch.begin(), batch.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 103; ++i) ASSERT_EQ(all[size_t(i)], i);
  EXPECT_THROW(shuffled_batches(5, 0, 1), UsageError);
}

}  // namespace
}  // namespace shrink
