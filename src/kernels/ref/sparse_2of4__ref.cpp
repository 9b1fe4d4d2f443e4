// 2:4 packing and the scalar reference product (see sparse_2of4.h).
#include <fmt/format.h>

#include "kernels/kernel_variants.h"
#include "shrink/core/error.h"
#include "shrink/kernels/sparse_2of4.h"

namespace shrink {

bool is_2of4(const float* w, int64_t n, int64_t k) {
  if (k % 4 != 0) return false;
  for (int64_t g = 0; g < n * k / 4; ++g) {
    int nonzero = 0;
    for (int p = 0; p < 4; ++p) nonzero += w[4 * g + p] != 0.f;
    if (nonzero > 2) return false;
  }
  return true;
}

Sparse2of4Storage pack_2of4(const float* w, int64_t n, int64_t k) {
  if (k % 8 != 0) throw UsageError(fmt::format("2:4 packing needs a multiple of 8 inputs, got {}", k));
  Sparse2of4Storage out;
  out.n = n, out.k = k;
  out.values.resize(size_t(n * k / 2));
  out.meta.assign(size_t(n * k / 8), 0);
  for (int64_t g = 0; g < n * k / 4; ++g) {
    const float* group = w + 4 * g;
    int kept[2], count = 0;
    for (int p = 0; p < 4; ++p)
      if (group[p] != 0.f) {
        if (count == 2)
          throw UsageError(fmt::format("row {} inputs {}..{} have more than 2 nonzeros: not 2:4 sparse", g / (k / 4),
                                       4 * (g % (k / 4)), 4 * (g % (k / 4)) + 3));
        kept[count++] = p;
      }
    // Fill the unused slots with zero-valued positions not taken yet, kept in increasing order.
    for (int p = 0; count < 2; ++p)
      if (count == 0 || kept[0] != p) {
        if (count == 1 && p < kept[0]) kept[1] = kept[0], kept[0] = p;
        else kept[count] = p;
        ++count;
      }
    out.values[size_t(2 * g)] = group[kept[0]];
    out.values[size_t(2 * g + 1)] = group[kept[1]];
    out.meta[size_t(g / 2)] |= uint8_t((kept[0] | kept[1] << 2) << (4 * (g % 2)));
  }
  return out;
}

namespace kernel_variants {

void gemm_f32_2of4__ref(int64_t m, const float* x, int64_t ldx, const Sparse2of4Weights& w, const float* bias,
                        float* out, int64_t ldo) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < w.n; ++c) {
      double sum = bias ? bias[c] : 0.0;
      for (int64_t g = 0; g < w.k / 4; ++g) {
        const int64_t at = c * w.k / 4 + g;
        const int nibble = (w.meta[at / 2] >> (4 * (at % 2))) & 15;
        sum += double(w.values[2 * at]) * x[i * ldx + 4 * g + (nibble & 3)];
        sum += double(w.values[2 * at + 1]) * x[i * ldx + 4 * g + (nibble >> 2)];
      }
      out[i * ldo + c] = float(sum);
    }
}

}  // namespace kernel_variants
}  // namespace shrink
