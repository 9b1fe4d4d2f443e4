// f32 -> ggml blocks, following llama.cpp's quantize_row_q8_0_ref / q4_0_ref / q4_1_ref exactly
// (the same float operations in the same order, so the bytes match ggml and the gguf package).
#include <cmath>
#include <cstring>

#include "kernels/kernel_variants.h"
#include "shrink/core/half.h"
#include "shrink/kernels/ggml_formats.h"

namespace shrink::kernel_variants {
namespace {
template <class Block> void store_block(void* blocks, int64_t index, const Block& block) {
  std::memcpy(static_cast<std::byte*>(blocks) + index * int64_t(sizeof(Block)), &block, sizeof(Block));
}
}  // namespace

void quantize_q8_0__ref(const float* x, void* blocks, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f;
    BlockQ8_0 block;
    block.d = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) block.qs[j] = int8_t(std::round(x[j] * id));
    store_block(blocks, b, block);
  }
}

void quantize_q4_0__ref(const float* x, void* blocks, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -8.f, id = d != 0.f ? 1.f / d : 0.f;
    BlockQ4_0 block;
    block.d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const uint8_t low = uint8_t(std::min(15, int(int8_t(x[j] * id + 8.5f))));
      const uint8_t high = uint8_t(std::min(15, int(int8_t(x[j + 16] * id + 8.5f))));
      block.qs[j] = uint8_t(low | high << 4);
    }
    store_block(blocks, b, block);
  }
}

void quantize_q4_1__ref(const float* x, void* blocks, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    float min = x[0], max = x[0];
    for (int j = 1; j < 32; ++j) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    const float d = (max - min) / 15.f, id = d != 0.f ? 1.f / d : 0.f;
    BlockQ4_1 block;
    block.d = f32_to_f16(d);
    block.m = f32_to_f16(min);
    for (int j = 0; j < 16; ++j) {
      const uint8_t low = uint8_t(std::min(15, int(int8_t((x[j] - min) * id + 0.5f))));
      const uint8_t high = uint8_t(std::min(15, int(int8_t((x[j + 16] - min) * id + 0.5f))));
      block.qs[j] = uint8_t(low | high << 4);
    }
    store_block(blocks, b, block);
  }
}

}  // namespace shrink::kernel_variants
