// safetensors bytes: parse and convert every tensor to f32.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.h"
#include "shrink/core/mapped_file.h"
#include "shrink/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shrink;
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  fuzz::expect_success_or_error([&] {
    const SafetensorsFile file = SafetensorsFile::parse(memory_source(std::move(bytes), "fuzz input"));
    for (const auto& entry : file.entries()) (void)file.tensor(entry.name).to(DType::f32);
  });
  return 0;
}
