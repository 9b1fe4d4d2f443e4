// Scalar dequantization of ggml's block formats to f32, following the block layouts and formulas
// of ggml (llama.cpp, ggml-quants.c). Blocks are copied out with memcpy: GGUF data is only
// guaranteed 2-byte aligned here.
#include <cstring>

#include "kernels/kernel_variants.h"
#include "shrink/core/half.h"
#include "shrink/kernels/ggml_formats.h"

namespace shrink::kernel_variants {
namespace {
template <class Block> Block load_block(const void* blocks, int64_t index) {
  Block block;
  std::memcpy(&block, static_cast<const std::byte*>(blocks) + index * int64_t(sizeof(Block)),
              sizeof(Block));
  return block;
}

// Q4_K packs eight 6-bit scales and eight 6-bit mins into 12 bytes.
void q4_k_scale_min(int j, const uint8_t* q, uint8_t& scale, uint8_t& min) {
  if (j < 4) {
    scale = q[j] & 63;
    min = q[j + 4] & 63;
  } else {
    scale = uint8_t((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
    min = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}
}  // namespace

void dequantize_q4_0__ref(const void* blocks, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, dst += 32) {
    const auto block = load_block<BlockQ4_0>(blocks, b);
    const float d = f16_to_f32(block.d);
    for (int j = 0; j < 16; ++j) {
      dst[j] = float((block.qs[j] & 0xf) - 8) * d;
      dst[j + 16] = float((block.qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1__ref(const void* blocks, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, dst += 32) {
    const auto block = load_block<BlockQ4_1>(blocks, b);
    const float d = f16_to_f32(block.d), m = f16_to_f32(block.m);
    for (int j = 0; j < 16; ++j) {
      dst[j] = float(block.qs[j] & 0xf) * d + m;
      dst[j + 16] = float(block.qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0__ref(const void* blocks, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, dst += 32) {
    const auto block = load_block<BlockQ5_0>(blocks, b);
    const float d = f16_to_f32(block.d);
    uint32_t qh;
    std::memcpy(&qh, block.qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int high0 = int((qh >> j) << 4 & 0x10), high1 = int((qh >> (j + 12)) & 0x10);
      dst[j] = float(((block.qs[j] & 0xf) | high0) - 16) * d;
      dst[j + 16] = float(((block.qs[j] >> 4) | high1) - 16) * d;
    }
  }
}

void dequantize_q5_1__ref(const void* blocks, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, dst += 32) {
    const auto block = load_block<BlockQ5_1>(blocks, b);
    const float d = f16_to_f32(block.d), m = f16_to_f32(block.m);
    uint32_t qh;
    std::memcpy(&qh, block.qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int high0 = int((qh >> j) << 4 & 0x10), high1 = int((qh >> (j + 12)) & 0x10);
      dst[j] = float((block.qs[j] & 0xf) | high0) * d + m;
      dst[j + 16] = float((block.qs[j] >> 4) | high1) * d + m;
    }
  }
}

void dequantize_q8_0__ref(const void* blocks, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, dst += 32) {
    const auto block = load_block<BlockQ8_0>(blocks, b);
    const float d = f16_to_f32(block.d);
    for (int j = 0; j < 32; ++j) dst[j] = float(block.qs[j]) * d;
  }
}

void dequantize_q4_k__ref(const void* blocks, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 256; ++b) {
    const auto block = load_block<BlockQ4_K>(blocks, b);
    const float d = f16_to_f32(block.d), dmin = f16_to_f32(block.dmin);
    const uint8_t* q = block.qs;
    for (int chunk = 0; chunk < 4; ++chunk, q += 32) {  // 64 values: 32 low nibbles, 32 high
      uint8_t scale, min;
      q4_k_scale_min(2 * chunk, block.scales, scale, min);
      const float d1 = d * float(scale), m1 = dmin * float(min);
      q4_k_scale_min(2 * chunk + 1, block.scales, scale, min);
      const float d2 = d * float(scale), m2 = dmin * float(min);
      for (int l = 0; l < 32; ++l) *dst++ = d1 * float(q[l] & 0xf) - m1;
      for (int l = 0; l < 32; ++l) *dst++ = d2 * float(q[l] >> 4) - m2;
    }
  }
}

void dequantize_q6_k__ref(const void* blocks, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 256; ++b) {
    const auto block = load_block<BlockQ6_K>(blocks, b);
    const float d = f16_to_f32(block.d);
    const uint8_t* ql = block.ql;
    const uint8_t* qh = block.qh;
    const int8_t* scale = block.scales;
    for (int half = 0; half < 2; ++half, dst += 128, ql += 64, qh += 32, scale += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xf) | ((qh[l] >> 0 & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xf) | ((qh[l] >> 2 & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4 & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6 & 3) << 4)) - 32;
        dst[l] = d * float(scale[is]) * float(q1);
        dst[l + 32] = d * float(scale[is + 2]) * float(q2);
        dst[l + 64] = d * float(scale[is + 4]) * float(q3);
        dst[l + 96] = d * float(scale[is + 6]) * float(q4);
      }
    }
  }
}

}  // namespace shrink::kernel_variants
