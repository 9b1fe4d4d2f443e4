// Read-only views of bytes: a memory-mapped file, or a buffer in memory (for tests and fuzzing).
// Readers take a ByteSource, so the same validation code runs on files and on mutated buffers.
#pragma once
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace shrink {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::span<const std::byte> bytes() const = 0;
  const std::string& name() const { return name_; }  // path or label, for error messages
  size_t size() const { return bytes().size(); }

 protected:
  explicit ByteSource(std::string name) : name_(std::move(name)) {}

 private:
  std::string name_;
};

// Maps a whole file read-only. Throws IoError when it cannot be opened or is not a regular file.
std::shared_ptr<const ByteSource> map_file(const std::string& path);
// Owns a copy of the bytes.
std::shared_ptr<const ByteSource> memory_source(std::vector<std::byte> bytes, std::string name);

}  // namespace shrink
