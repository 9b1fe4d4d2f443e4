// A bounds-checked little-endian reader over a byte span. Every read checks the remaining length
// first and throws FormatError naming the file, the offset and what was being read.
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "shrink/core/error.h"

namespace shrink::io {

class ByteCursor {
 public:
  ByteCursor(std::span<const std::byte> bytes, std::string source_name)
      : bytes_(bytes), name_(std::move(source_name)) {}

  uint64_t position() const { return position_; }
  uint64_t remaining() const { return bytes_.size() - position_; }
  const std::string& source_name() const { return name_; }

  template <class T> T read(const char* what) {
    require(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + position_, sizeof(T));
    position_ += sizeof(T);
    return value;
  }
  // A length-prefixed (u64) string; the length is checked against the bytes that remain.
  std::string read_string(const char* what) {
    const uint64_t length = read<uint64_t>(what);
    require(length, what);
    std::string text(reinterpret_cast<const char*>(bytes_.data() + position_), size_t(length));
    position_ += length;
    return text;
  }
  void skip(uint64_t bytes, const char* what) {
    require(bytes, what);
    position_ += bytes;
  }
  [[noreturn]] void fail(const std::string& problem) const {
    throw FormatError(problem + " at byte " + std::to_string(position_), name_,
                      "the file is truncated or corrupt; fetch or export it again");
  }

 private:
  void require(uint64_t bytes, const char* what) const {
    if (bytes > remaining())
      fail(std::string("file ends inside ") + what + " (needs " + std::to_string(bytes) +
           " bytes, " + std::to_string(remaining()) + " left)");
  }

  std::span<const std::byte> bytes_;
  std::string name_;
  uint64_t position_ = 0;
};

}  // namespace shrink::io
