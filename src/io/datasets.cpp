// IDX and text datasets, gzip through zlib, seeded batching.
#include <cstdlib>
#include "shrink/io/datasets.h"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <numeric>

#include "shrink/core/mapped_file.h"
#include "shrink/core/rng.h"

namespace shrink {

std::string asset_cache_dir() {
  const char* cache = std::getenv("SHRINK_CACHE");
  if (cache && *cache) return cache;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.cache/shrink";
}


std::vector<std::byte> read_maybe_gzipped(const std::string& path, size_t max_bytes) {
  const auto source = map_file(path);
  const auto in = source->bytes();
  if (in.size() < 2 || in[0] != std::byte{0x1f} || in[1] != std::byte{0x8b}) return {in.begin(), in.end()};
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 32) != Z_OK) throw Error("zlib could not start", path);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  stream.avail_in = uInt(in.size());
  std::vector<std::byte> out;
  int status = Z_OK;
  while (status != Z_STREAM_END) {
    if (out.size() >= max_bytes) {
      inflateEnd(&stream);
      throw FormatError("decompresses to more than " + std::to_string(max_bytes) + " bytes", path);
    }
    const size_t before = out.size();
    out.resize(std::min(max_bytes, before + (size_t(1) << 22)));
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + before);
    stream.avail_out = uInt(out.size() - before);
    status = inflate(&stream, Z_NO_FLUSH);
    out.resize(out.size() - stream.avail_out);
    if (status != Z_OK && status != Z_STREAM_END) {
      inflateEnd(&stream);
      throw FormatError("gzip data is corrupt or truncated", path, "fetch the dataset again");
    }
    if (status == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) {
      inflateEnd(&stream);
      throw FormatError("gzip data ends early", path, "fetch the dataset again");
    }
  }
  inflateEnd(&stream);
  return out;
}

Tensor parse_idx(const std::vector<std::byte>& bytes, const std::string& name) {
  auto fail = [&](const std::string& problem) -> Tensor {
    throw FormatError(problem, name, "expected an IDX file of unsigned bytes (MNIST format)");
  };
  if (bytes.size() < 4) return fail("too short for an IDX header");
  const auto u8 = [&](size_t i) { return uint8_t(bytes[i]); };
  if (u8(0) != 0 || u8(1) != 0) return fail("bad magic number");
  if (u8(2) != 0x08) return fail("element type " + std::to_string(u8(2)) + " is not unsigned bytes (0x08)");
  const int rank = u8(3);
  if (rank < 1 || rank > 4) return fail("rank " + std::to_string(rank) + " is outside 1..4");
  if (bytes.size() < 4 + 4 * size_t(rank)) return fail("file ends inside the dimensions");
  std::vector<int64_t> dims;
  for (int d = 0; d < rank; ++d) {
    const size_t at = 4 + 4 * size_t(d);
    dims.push_back(int64_t(uint32_t(u8(at)) << 24 | uint32_t(u8(at + 1)) << 16 | uint32_t(u8(at + 2)) << 8 | u8(at + 3)));
  }
  int64_t count = 0;
  if (!checked_numel(dims, count)) return fail("dimensions overflow");
  const size_t header = 4 + 4 * size_t(rank);
  if (bytes.size() - header != size_t(count))
    return fail("holds " + std::to_string(bytes.size() - header) + " data bytes, its dimensions say " + std::to_string(count));
  Tensor t = Tensor::empty(Shape(dims), DType::u8);
  if (count) std::memcpy(t.mutable_raw_data(), bytes.data() + header, size_t(count));
  return t;
}

Tensor read_idx(const std::string& path) { return parse_idx(read_maybe_gzipped(path, size_t(1) << 30), path); }

ImageDataset load_idx_images(const std::string& folder, const std::string& split) {
  if (split != "train" && split != "t10k") throw UsageError("unknown split '" + split + "'", folder, "use train or t10k");
  ImageDataset data;
  data.images = read_idx(folder + "/" + split + "-images-idx3-ubyte.gz");
  data.labels = read_idx(folder + "/" + split + "-labels-idx1-ubyte.gz");
  if (data.images.rank() != 3 || data.labels.rank() != 1 || data.images.shape()[0] != data.labels.shape()[0])
    throw FormatError("images " + data.images.shape().to_string() + " and labels " + data.labels.shape().to_string() +
                      " do not pair up", folder);
  for (int64_t i = 0; i < data.labels.numel(); ++i)
    if (data.labels.data<uint8_t>()[i] >= data.classes)
      throw FormatError("label " + std::to_string(data.labels.data<uint8_t>()[i]) + " outside 0..9", folder);
  return data;
}

CharVocabulary::CharVocabulary(const std::string& training_text) {
  bool seen[256] = {};
  for (unsigned char c : training_text) seen[c] = true;
  for (int c = 0; c < 256; ++c)
    if (seen[c]) {
      symbols_.push_back(static_cast<unsigned char>(c));
      ids_[c] = int32_t(symbols_.size());
    }
}

std::vector<int32_t> CharVocabulary::encode(const std::string& text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = ids_[static_cast<unsigned char>(text[i])];
  return ids;
}

std::string CharVocabulary::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (int32_t id : ids) text += id >= 1 && id <= int32_t(symbols_.size()) ? char(symbols_[size_t(id - 1)]) : '?';
  return text;
}

AustenSplit load_austen(const std::string& folder) {
  auto read = [&](const std::string& novel) {
    const auto bytes = read_maybe_gzipped(folder + "/" + novel + ".txt", size_t(64) << 20);
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  };
  AustenSplit split;
  for (const char* novel : {"sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey"})
    split.train += read(novel);
  split.eval = read("persuasion");
  return split;
}

std::vector<std::vector<int64_t>> shuffled_batches(int64_t n, int64_t batch_size, uint64_t seed) {
  if (batch_size <= 0) throw UsageError("batch size must be positive, got " + std::to_string(batch_size));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  Rng rng(seed);
  rng.shuffle(order);
  std::vector<std::vector<int64_t>> batches;
  for (int64_t start = 0; start < n; start += batch_size)
    batches.emplace_back(order.begin() + start, order.begin() + std::min(n, start + batch_size));
  return batches;
}

}  // namespace shrink
