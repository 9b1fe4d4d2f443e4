// Scalar reference of the int4 x int8 path (see int4_gemm.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "kernels/kernel_variants.h"
#include "shrink/core/half.h"
#include "shrink/kernels/ggml_formats.h"
#include "shrink/kernels/int4_gemm.h"

namespace shrink {

void pack_int4_nibbles(const uint8_t* q, int64_t n, int64_t k, uint8_t* nibbles) {
  for (int64_t row = 0; row < n; ++row)
    for (int64_t block = 0; block < k / 32; ++block)
      for (int j = 0; j < 16; ++j) {
        const uint8_t* values = q + row * k + block * 32;
        nibbles[row * k / 2 + block * 16 + j] = uint8_t((values[j] & 15) | (values[j + 16] & 15) << 4);
      }
}

void pack_row_panels(const uint8_t* rows, int64_t n, int64_t row_bytes, uint8_t* panels) {
  if (row_bytes % 32) throw std::invalid_argument("pack_row_panels needs rows of a multiple of 32 bytes");
  const int64_t runs = row_bytes / 32;
  for (int64_t p = 0; p < n / 4; ++p)
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t j = 0; j < runs; ++j)
        std::memcpy(panels + p * 4 * row_bytes + (4 * j + c) * 32, rows + (4 * p + c) * row_bytes + j * 32, 32);
  std::memcpy(panels + n / 4 * 4 * row_bytes, rows + n / 4 * 4 * row_bytes, size_t(n % 4 * row_bytes));
}

void pack_int4_panels(const uint8_t* nibbles, int64_t n, int64_t k, uint8_t* panels) {
  if (k % 64) throw std::invalid_argument("pack_int4_panels needs k % 64 == 0");
  pack_row_panels(nibbles, n, k / 2, panels);
}

void pack_int4_panel_scales(const uint16_t* scales, int64_t n, int64_t k, int64_t group, uint16_t* panel_scales) {
  if (group != 32 || k % 64) throw std::invalid_argument("pack_int4_panel_scales needs groups of 32 and k % 64 == 0");
  const int64_t groups = k / group;
  for (int64_t p = 0; p < n / 4; ++p)
    for (int64_t h = 0; h < 2; ++h) {
      const uint16_t* first = scales + (4 * p + 2 * h) * groups;  // rows 2h and 2h + 1 of the panel
      uint16_t* to = panel_scales + (4 * p + 2 * h) * groups;
      for (int64_t t = 0; t < groups / 2; ++t) {
        to[4 * t] = first[2 * t], to[4 * t + 1] = first[2 * t + 1];
        to[4 * t + 2] = first[groups + 2 * t], to[4 * t + 3] = first[groups + 2 * t + 1];
      }
    }
  std::copy(scales + n / 4 * 4 * groups, scales + n * groups, panel_scales + n / 4 * 4 * groups);
}

Int4Weights int4_rows(const Int4Weights& w, int64_t r0, int64_t r1) {
  const int64_t groups = w.k / w.group;
  Int4Weights s = w;
  s.nibbles += r0 * (w.k / 2), s.scales += r0 * groups, s.mins += r0 * groups, s.n = r1 - r0;
  if (s.panels) s.panels += r0 * (w.k / 2);
  if (s.panel_scales) s.panel_scales += r0 * groups;
  if (s.row_blocks) s.row_blocks += r0 / w.block_rows * int4_row_block_bytes(w.k, w.group, w.block_rows);
  return s;
}

bool int4_row_blocks_fit(const Int4Weights& w, int64_t rows) {
  const bool group_fits = w.group == 32 || w.group == 64 || w.group == 128 || w.group == 256;
  return (rows == 8 || rows == 16) && group_fits && w.n > 0 && w.n % rows == 0 && w.k > 0 && w.k % w.group == 0;
}

int64_t int4_row_block_bytes(int64_t k, int64_t group, int64_t rows) { return k / group * (group / 8 + 1) * 4 * rows; }

void pack_int4_row_blocks(const Int4Weights& w, int64_t rows, uint8_t* blocks) {
  if (!int4_row_blocks_fit(w, rows))
    throw std::invalid_argument("pack_int4_row_blocks needs blocks of 8 or 16 rows, n a multiple of them, "
                                "groups of 32, 64, 128 or 256 and k % group == 0");
  const int64_t groups = w.k / w.group, lines = w.group / 8, line_bytes = 4 * rows;
  for (int64_t b = 0; b < w.n / rows; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      uint8_t* block = blocks + b * int4_row_block_bytes(w.k, w.group, rows) + g * (lines + 1) * line_bytes;
      for (int64_t i = 0; i < lines; ++i)
        for (int64_t r = 0; r < rows; ++r)
          std::memcpy(block + i * line_bytes + 4 * r, w.nibbles + (rows * b + r) * (w.k / 2) + 4 * (g * lines + i), 4);
      auto* scales = reinterpret_cast<uint16_t*>(block + lines * line_bytes);
      for (int64_t r = 0; r < rows; ++r) {
        scales[r] = w.scales[(rows * b + r) * groups + g];
        scales[rows + r] = w.mins[(rows * b + r) * groups + g];
      }
    }
}

namespace {
template <class Block> Int4Storage int4_from_blocks(const void* blocks, int64_t n, int64_t k) {
  Int4Storage out;
  out.n = n, out.k = k, out.group = 32;
  const int64_t count = n * k / 32;
  out.nibbles.resize(size_t(n * k / 2));
  out.scales.resize(size_t(count));
  out.mins.resize(size_t(count));
  for (int64_t b = 0; b < count; ++b) {
    Block block;
    std::memcpy(&block, static_cast<const std::byte*>(blocks) + b * int64_t(sizeof(Block)), sizeof(Block));
    std::memcpy(out.nibbles.data() + b * 16, block.qs, 16);
    out.scales[size_t(b)] = block.d;
    if constexpr (std::is_same_v<Block, BlockQ4_1>) {
      out.mins[size_t(b)] = block.m;
    } else {
      out.mins[size_t(b)] = f32_to_f16(-8.f * f16_to_f32(block.d));  // exact: a power-of-two multiple
    }
  }
  return out;
}
}  // namespace

Int4Storage int4_from_q4_0(const void* blocks, int64_t n, int64_t k) { return int4_from_blocks<BlockQ4_0>(blocks, n, k); }
Int4Storage int4_from_q4_1(const void* blocks, int64_t n, int64_t k) { return int4_from_blocks<BlockQ4_1>(blocks, n, k); }

namespace kernel_variants {

void int4_group_qparams(float lo, float hi, float& scale, float& zero) {
  lo = std::min(lo, 0.f);
  hi = std::max(hi, 0.f);
  if (lo == 0.f && hi == 0.f) {
    lo = -1.f;
    hi = 1.f;
  }
  scale = (hi - lo) / 15.f;
  zero = std::nearbyint(-lo / scale);
}

void quantize_int4__ref(const float* w, int64_t n, int64_t k, int64_t group, uint8_t* nibbles, uint16_t* scales,
                        uint16_t* mins) {
  const int64_t groups = k / group;
  for (int64_t row = 0; row < n; ++row)
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = w + row * k + g * group;
      float lo = x[0], hi = x[0];
      for (int64_t j = 1; j < group; ++j) {
        lo = std::min(lo, x[j]);
        hi = std::max(hi, x[j]);
      }
      float scale, zero;
      int4_group_qparams(lo, hi, scale, zero);
      scales[row * groups + g] = f32_to_f16(scale);
      mins[row * groups + g] = f32_to_f16(-zero * scale);
      for (int64_t j = 0; j < group; ++j) {
        const uint8_t q = uint8_t(std::clamp(std::nearbyint(x[j] / scale) + zero, 0.f, 15.f));
        const int64_t at = g * group + j;  // position in the row; ggml order within 32 values
        uint8_t& byte = nibbles[row * k / 2 + at / 32 * 16 + at % 16];
        byte = at % 32 < 16 ? uint8_t((byte & 0xf0) | q) : uint8_t((byte & 0x0f) | q << 4);
      }
    }
}

void quantize_rows_s8__ref(const float* x, int64_t m, int64_t k, int64_t group, int8_t* q, float* scale,
                           int32_t* group_sums) {
  for (int64_t i = 0; i < m; ++i) {
    const float* row = x + i * k;
    float amax = 0.f;
    for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(row[j]));
    scale[i] = amax / 127.f;
    const float inverse = amax > 0.f ? 127.f / amax : 0.f;
    for (int64_t g = 0; g < k / group; ++g) {
      int32_t sum = 0;
      for (int64_t j = g * group; j < (g + 1) * group; ++j) {
        q[i * k + j] = int8_t(std::nearbyint(row[j] * inverse));
        sum += q[i * k + j];
      }
      group_sums[i * (k / group) + g] = sum;
    }
  }
}

void gemm_q4s8__ref(int64_t m, const int8_t* q, const float* a_scale, const int32_t* group_sums, const Int4Weights& w,
                    const float* bias, float* out, int64_t ldo) {
  const int64_t groups = w.k / w.group;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < w.n; ++c) {
      float acc = 0.f;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t dot = 0;
        for (int64_t j = g * w.group; j < (g + 1) * w.group; ++j) {
          const uint8_t byte = w.nibbles[c * w.k / 2 + j / 32 * 16 + j % 16];
          const int32_t value = j % 32 < 16 ? byte & 15 : byte >> 4;
          dot += value * q[i * w.k + j];
        }
        acc += f16_to_f32(w.scales[c * groups + g]) * float(dot) +
               f16_to_f32(w.mins[c * groups + g]) * float(group_sums[i * groups + g]);
      }
      out[i * ldo + c] = a_scale[i] * acc + (bias ? bias[c] : 0.f);
    }
}

void gemm_q4f32__ref(int64_t m, const float* x, const Int4Weights& w, const float* bias, float* out, int64_t ldo) {
  const int64_t groups = w.k / w.group;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < w.n; ++c) {
      float acc = 0.f;
      for (int64_t g = 0; g < groups; ++g) {
        float dot = 0.f, sum = 0.f;
        for (int64_t j = g * w.group; j < (g + 1) * w.group; ++j) {
          const uint8_t byte = w.nibbles[c * w.k / 2 + j / 32 * 16 + j % 16];
          dot += float(j % 32 < 16 ? byte & 15 : byte >> 4) * x[i * w.k + j];
          sum += x[i * w.k + j];
        }
        acc += f16_to_f32(w.scales[c * groups + g]) * dot + f16_to_f32(w.mins[c * groups + g]) * sum;
      }
      out[i * ldo + c] = acc + (bias ? bias[c] : 0.f);
    }
}

}  // namespace kernel_variants
}  // namespace shrink
