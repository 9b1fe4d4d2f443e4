// Weight packing and the shared per-row qparams of the int8 path.
#include <algorithm>
#include <cmath>
#include <limits>

#include "shrink/kernels/int8_gemm.h"

namespace shrink {

void pack_int8_weights(const int8_t* w, int64_t n, int64_t k, int8_t* packed, int32_t* col_sums) {
  const int64_t panels = (n + kInt8Panel - 1) / kInt8Panel, groups = int8_padded_k(k) / kInt8Group;
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t c = 0; c < kInt8Panel; ++c)
        for (int64_t j = 0; j < kInt8Group; ++j) {
          const int64_t row = p * kInt8Panel + c, col = g * kInt8Group + j;
          packed[((p * groups + g) * kInt8Panel + c) * kInt8Group + j] = row < n && col < k ? w[row * k + col] : 0;
        }
  for (int64_t c = 0; c < n; ++c) {
    int32_t sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += w[c * k + j];
    col_sums[c] = sum;
  }
}

void u8_row_qparams(float min, float max, float& scale, int32_t& zero) {
  min = std::min(min, 0.f);
  max = std::max(max, 0.f);
  scale = std::max((max - min) / 127.f, std::numeric_limits<float>::epsilon());
  zero = int32_t(std::clamp(-std::nearbyint(min / scale), 0.f, 127.f));
}

}  // namespace shrink
