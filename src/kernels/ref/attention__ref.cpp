// Scalar reference of single-query attention (attend_f32 and attend_f16kv, registry.h) and of a
// prompt's rows (attend_prompt_f32: each row through the single-query code over the keys it
// sees): scores, softmax with the maximum subtracted, the probability-weighted sum of the values,
// and the log of the softmax's denominator when asked for. f16 keys (in attend_f16kv's blocks)
// and values are widened exactly (half.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/kernel_variants.h"
#include "shrink/core/half.h"
#include "shrink/kernels/registry.h"

namespace shrink::kernel_variants {
namespace {

inline float widen(float x) { return x; }
inline float widen(uint16_t x) { return f16_to_f32(x); }

// key(j, d): key j's entry d, in whichever layout the caller's keys have.
template <class T, class Key>
void attend(int64_t queries, const float* q, int64_t q_stride, const Key& key, const T* v, int64_t kv_stride,
            int64_t length, int64_t dim, float scale, float* y, int64_t y_stride, float* scratch, float* lse) {
  for (int64_t r = 0; r < queries; ++r) {
    float* p = scratch + r * length;
    const float* qr = q + r * q_stride;
    float top = -INFINITY;
    for (int64_t j = 0; j < length; ++j) {
      float dot = 0.f;
      for (int64_t d = 0; d < dim; ++d) dot += qr[d] * widen(key(j, d));
      p[j] = dot * scale;
      top = std::max(top, p[j]);
    }
    float sum = 0.f;
    for (int64_t j = 0; j < length; ++j) sum += p[j] = std::exp(p[j] - top);
    if (lse) lse[r] = top + std::log(sum);
    float* yr = y + r * y_stride;
    std::fill(yr, yr + dim, 0.f);
    for (int64_t j = 0; j < length; ++j)
      for (int64_t d = 0; d < dim; ++d) yr[d] += p[j] / sum * widen(v[j * kv_stride + d]);
  }
}

}  // namespace

void attend_f32__ref(int64_t queries, const float* q, int64_t q_stride, const float* k, const float* v, int64_t kv_stride,
                     int64_t length, int64_t dim, float scale, float* y, int64_t y_stride, float* scratch,
                     float* lse) {
  const auto key = [&](int64_t j, int64_t d) { return k[j * kv_stride + d]; };
  attend(queries, q, q_stride, key, v, kv_stride, length, dim, scale, y, y_stride, scratch, lse);
}

void attend_f16kv__ref(int64_t queries, const float* q, int64_t q_stride, const uint16_t* k, const uint16_t* v,
                       int64_t v_stride, int64_t length, int64_t dim, float scale, float* y, int64_t y_stride,
                       float* scratch, float* lse) {
  const auto key = [&](int64_t j, int64_t d) { return k[key_block_index(j, d, dim)]; };
  attend(queries, q, q_stride, key, v, v_stride, length, dim, scale, y, y_stride, scratch, lse);
}

void attend_prompt_f32__ref(int64_t rows, const float* q, int64_t q_stride, const float* key_blocks, const float* v,
                            int64_t v_stride, int64_t keys, int64_t dim, float scale, int64_t diagonal, float* y,
                            int64_t y_stride) {
  const auto key = [&](int64_t j, int64_t d) { return key_blocks[key_block_index(j, d, dim)]; };
  std::vector<float> scratch(static_cast<size_t>(keys));
  for (int64_t i = 0; i < rows; ++i)
    attend(1, q + i * q_stride, q_stride, key, v, v_stride, std::min(keys, diagonal + i + 1), dim, scale,
           y + i * y_stride, y_stride, scratch.data(), nullptr);
}

}  // namespace shrink::kernel_variants
