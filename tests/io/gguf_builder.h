// Builds GGUF bytes field by field for tests, so each test can write exactly the lie it needs.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace shrink::testing {

class GgufBuilder {
 public:
  std::vector<std::byte> bytes;

  template <class T> GgufBuilder& put(T value) {
    const size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &value, sizeof(T));
    return *this;
  }
  GgufBuilder& string(const std::string& text) {
    put<uint64_t>(text.size());
    for (char c : text) bytes.push_back(std::byte(c));
    return *this;
  }
  GgufBuilder& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    return put<uint32_t>(0x46554747).put<uint32_t>(version).put<uint64_t>(tensors).put<uint64_t>(kvs);
  }
  GgufBuilder& kv_u32(const std::string& key, uint32_t value) { return string(key).put<uint32_t>(4).put<uint32_t>(value); }
  GgufBuilder& kv_string(const std::string& key, const std::string& value) { return string(key).put<uint32_t>(8).string(value); }
  GgufBuilder& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    string(name).put<uint32_t>(uint32_t(ne.size()));
    for (uint64_t d : ne) put<uint64_t>(d);
    return put<uint32_t>(type).put<uint64_t>(offset);
  }
  GgufBuilder& align(size_t alignment = 32) {
    while (bytes.size() % alignment) bytes.push_back(std::byte{0});
    return *this;
  }
  GgufBuilder& zeros(size_t count) {
    bytes.resize(bytes.size() + count);
    return *this;
  }
};

}  // namespace shrink::testing
