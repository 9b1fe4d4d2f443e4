// safetensors (Hugging Face): an 8-byte little-endian header length, a JSON header mapping tensor
// names to dtype, shape and [begin, end) data offsets (plus an optional "__metadata__" object of
// strings), then the tensor bytes. Reading maps the file and hands out zero-copy views; every
// size, offset and overlap is validated first. Writing is atomic (temporary file + rename).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shrink/core/tensor.h"

namespace shrink {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
};

using StringPairs = std::vector<std::pair<std::string, std::string>>;

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);
  static SafetensorsFile parse(std::shared_ptr<const ByteSource> source);

  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // by data offset
  const StringPairs& metadata() const { return metadata_; }                  // "__metadata__"
  const SafetensorsEntry* find(std::string_view name) const;
  // Zero-copy and read-only (an aligned copy if the file misaligns it); UsageError if absent.
  Tensor tensor(std::string_view name) const;
  uint64_t header_bytes() const { return header_bytes_; }
  uint64_t file_bytes() const { return source_->size(); }
  const std::string& source_name() const { return source_->name(); }

 private:
  std::shared_ptr<const ByteSource> source_;
  std::vector<SafetensorsEntry> entries_;
  StringPairs metadata_;
  uint64_t header_bytes_ = 0;
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// Writes tensors in the order given (views are made contiguous). Throws UsageError for empty or
// duplicate names, IoError when the file cannot be written; never leaves a partial file.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const StringPairs& metadata = {});

// safetensors' dtype names ("F32", "BF16", "I64", ...).
std::string_view safetensors_dtype_name(DType dtype);

}  // namespace shrink
