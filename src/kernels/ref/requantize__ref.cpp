// Scalar reference of the requantizing u8 add.
#include "kernels/kernel_variants.h"

namespace shrink::kernel_variants {

void add_u8__ref(const uint8_t* a, const uint8_t* b, int64_t n, const AddU8Params& p, uint8_t* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::max(float(a[i]) * p.a_scale + float(b[i]) * p.b_scale + p.offset, p.low);
    y[i] = requantize_u8(v, p.inverse_scale, p.zero, p.max);
  }
}

}  // namespace shrink::kernel_variants
