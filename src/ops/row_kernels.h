// Row functions shared by ops and the decoder's fused single-token steps (nn/decoder.cpp), so that
// a fused step computes bit for bit what the ops compute one after another.
#pragma once
#include <cstdint>

namespace shrink::nn::ops {

// One row of LayerNorm (b non-null) or RMSNorm (b null): out = (x - mean) * inv * w + b, mean 0
// for RMSNorm, inv = 1 / sqrt(mean square + eps), the sums in double. Returns {mean, inv}.
struct NormStats {
  float mean, inv;
};
NormStats norm_row(const float* x, int64_t d, const float* w, const float* b, bool layer_norm, float eps, float* out);

// y = x * sigmoid(x), as the SiLU op computes it.
void silu_row(const float* x, float* y, int64_t n);

}  // namespace shrink::nn::ops
