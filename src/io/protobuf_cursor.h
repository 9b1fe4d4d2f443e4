// A bounds-checked reader of the protocol-buffers wire format (the encoding ONNX files use):
// a message is a run of fields, each a key (field number << 3 | wire type) then a varint, a
// fixed 32/64-bit value or a length-delimited run of bytes (strings, bytes, packed repeated
// values, nested messages). Every length is checked against the bytes left before it is trusted;
// a damaged file throws FormatError naming the offset.
// Wire format: https://protobuf.dev/programming-guides/encoding/
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "shrink/core/error.h"

namespace shrink::io {

enum class WireType : uint8_t { varint = 0, fixed64 = 1, bytes = 2, fixed32 = 5 };

class ProtobufCursor {
 public:
  ProtobufCursor(std::span<const std::byte> bytes, std::string source_name, uint64_t base = 0)
      : bytes_(bytes), name_(std::move(source_name)), base_(base) {}

  bool done() const { return position_ >= bytes_.size(); }

  // The next field's number and wire type; groups (wire types 3 and 4, deprecated) are refused.
  std::pair<uint32_t, WireType> next_field() {
    const uint64_t key = varint("a field key");
    const uint64_t field = key >> 3, type = key & 7;
    if (field == 0 || field > (uint64_t(1) << 29)) fail("field number " + std::to_string(field) + " is invalid");
    if (type != 0 && type != 1 && type != 2 && type != 5)
      fail("wire type " + std::to_string(type) + " of field " + std::to_string(field) + " is not supported");
    return {uint32_t(field), WireType(type)};
  }

  uint64_t varint(const char* what) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (done()) fail(std::string("the message ends inside ") + what);
      const auto byte = uint8_t(bytes_[position_++]);
      value |= uint64_t(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return value;
    }
    fail(std::string("a varint longer than 10 bytes in ") + what);
  }
  int64_t int64(const char* what) { return int64_t(varint(what)); }

  template <class T> T fixed(const char* what) {
    require(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + position_, sizeof(T));
    position_ += sizeof(T);
    return value;
  }

  // A length-delimited field's bytes (a string, packed values or a nested message).
  std::span<const std::byte> bytes(const char* what) {
    const uint64_t length = varint(what);
    require(length, what);
    auto view = bytes_.subspan(size_t(position_), size_t(length));
    position_ += length;
    return view;
  }
  std::string string(const char* what) {
    auto view = bytes(what);
    return std::string(reinterpret_cast<const char*>(view.data()), view.size());
  }
  // A nested message's reader, its offsets reported from the start of the file.
  ProtobufCursor message(const char* what) {
    const uint64_t length = varint(what);
    require(length, what);
    ProtobufCursor inner(bytes_.subspan(size_t(position_), size_t(length)), name_, base_ + position_);
    position_ += length;
    return inner;
  }

  void skip(WireType type) {
    switch (type) {
      case WireType::varint: varint("a skipped field"); break;
      case WireType::fixed64: fixed<uint64_t>("a skipped field"); break;
      case WireType::fixed32: fixed<uint32_t>("a skipped field"); break;
      case WireType::bytes: bytes("a skipped field"); break;
    }
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw FormatError(problem + " at byte " + std::to_string(base_ + position_), name_,
                      "the file is truncated or is not a valid protocol-buffers (ONNX) file");
  }
  const std::string& source_name() const { return name_; }

 private:
  void require(uint64_t length, const char* what) const {
    if (length > bytes_.size() - position_)
      fail(std::string("the message ends inside ") + what + " (needs " + std::to_string(length) + " bytes, " +
           std::to_string(bytes_.size() - position_) + " left)");
  }

  std::span<const std::byte> bytes_;
  std::string name_;
  uint64_t base_ = 0;  // where bytes_ starts in the file
  uint64_t position_ = 0;
};

}  // namespace shrink::io
