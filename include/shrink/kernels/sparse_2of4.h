// 2:4 semi-structured sparse f32 weights (at most 2 nonzeros in every 4 consecutive inputs of a
// row, the pattern NVIDIA's sparse tensor cores and SparseGPT's N:M mode use) stored compressed:
// the 2 kept values of each group of 4, and their positions in 4 bits (first | second << 2,
// first < second); two groups per metadata byte, the even group in the low nibble. Storage is
// 2 x 4 + 0.5 = 8.5 bytes per 4 weights instead of 16: at batch 1, where a Linear layer is bound
// by reading its weights, the ceiling is 16 / 8.5 = 1.88x over dense f32.
#pragma once
#include <cstdint>
#include <vector>

namespace shrink {

struct Sparse2of4Weights {
  const float* values;  // n * k / 2
  const uint8_t* meta;  // n * k / 8
  int64_t n, k;         // k a multiple of 8
};

struct Sparse2of4Storage {
  std::vector<float> values;
  std::vector<uint8_t> meta;
  int64_t n = 0, k = 0;
  Sparse2of4Weights view() const { return {values.data(), meta.data(), n, k}; }
};

// Dense [n][k] f32 -> compressed. UsageError when k is not a multiple of 8 or a group has more
// than 2 nonzeros. Groups with fewer keep explicit zeros.
Sparse2of4Storage pack_2of4(const float* w, int64_t n, int64_t k);
bool is_2of4(const float* w, int64_t n, int64_t k);  // every group of 4 has at most 2 nonzeros

// out[i][c] = sum_j x[i][j] W[c][j] + bias[c] for m rows of x (ldx apart); bias may be null.
using GemmF32Sparse2of4Fn = void (*)(int64_t m, const float* x, int64_t ldx, const Sparse2of4Weights& w,
                                     const float* bias, float* out, int64_t ldo);

}  // namespace shrink
