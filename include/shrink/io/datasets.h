// Real datasets: IDX files (MNIST/Fashion-MNIST, gzip'd or not), the Austen novels as text with a
// character vocabulary, and seeded shuffling into batches. Readers validate every header field
// against the bytes present before allocating.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "shrink/core/tensor.h"

namespace shrink {

// Decompresses a .gz file into memory (or reads it as is when it is not gzip'd), refusing output
// past `max_bytes`.
// The asset cache of tools/fetch_assets.py: $SHRINK_CACHE, or ~/.cache/shrink.
std::string asset_cache_dir();

std::vector<std::byte> read_maybe_gzipped(const std::string& path, size_t max_bytes = size_t(1) << 31);

// An IDX array (magic 0x00 0x00 type rank, big-endian u32 dims, then the data). Only unsigned
// bytes (type 0x08) are read: what MNIST-style datasets use. Returns a u8 tensor of those dims.
Tensor read_idx(const std::string& path);
Tensor parse_idx(const std::vector<std::byte>& bytes, const std::string& name);

struct ImageDataset {
  Tensor images;  // u8 [N, rows, cols]
  Tensor labels;  // u8 [N]
  int classes = 10;
};
// split: "train" or "t10k" (the file-name prefixes of the IDX files in `folder`).
ImageDataset load_idx_images(const std::string& folder, const std::string& split);

// Characters of a text as ids over a vocabulary of the distinct bytes in the training text; bytes
// unseen in training map to id 0 (reserved for "unknown").
class CharVocabulary {
 public:
  explicit CharVocabulary(const std::string& training_text);
  std::vector<int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  int size() const { return int(symbols_.size()) + 1; }

 private:
  std::vector<unsigned char> symbols_;  // id - 1 -> byte
  int32_t ids_[256] = {};
};

// The six novels of tools/fetch_assets.py: five for training (and calibration), Persuasion held
// out for evaluation, as ASSETS.md suggests.
struct AustenSplit {
  std::string train, eval;
};
AustenSplit load_austen(const std::string& folder);

// A permutation of [0, n) from a seed, cut into batches (the last one may be shorter).
std::vector<std::vector<int64_t>> shuffled_batches(int64_t n, int64_t batch_size, uint64_t seed);

}  // namespace shrink
