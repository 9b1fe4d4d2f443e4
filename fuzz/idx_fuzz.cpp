// IDX (MNIST-style) bytes: parse into a tensor.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.h"
#include "shrink/io/datasets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  shrink::fuzz::expect_success_or_error([&] { (void)shrink::parse_idx(bytes, "fuzz input"); });
  return 0;
}
