// Range searches over a histogram (non-empty bins in increasing order, see bf16_histogram.h).
#pragma once
#include <utility>
#include <vector>

#include "quant/bf16_histogram.h"
#include "shrink/quant/scheme.h"

namespace shrink::quant_detail {

using Range = std::pair<double, double>;

// Sum over bins of count * (centre - dequantize(quantize(centre)))^2 for the range [low, high].
double quantization_error(const std::vector<Bin>& bins, double low, double high, const QuantScheme& scheme);
// The values below which (100 - p)% and p% of the mass lies, interpolating inside bins.
Range percentile_range(const std::vector<Bin>& bins, double p);
// PyTorch HistogramObserver's idea: from the full range, move in the end with the lighter tail one
// bin at a time, keeping the range with the least L2 error along the way.
Range greedy_l2_range(const std::vector<Bin>& bins, const QuantScheme& scheme);
// Clipping ratios r (and, for affine schemes, separate ratios for each end) from 1 down to 0.2 in
// steps of 0.01, keeping the range with the least error.
Range mse_range(const std::vector<Bin>& bins, const QuantScheme& scheme);
// TensorRT's entropy calibration (after Migacz, "8-bit inference with TensorRT", 2017): the |x|
// threshold whose clipped, 2^(bits-1)-level quantized distribution has the least KL divergence
// from the clipped reference, over 2048 linear bins of |x|.
Range entropy_range(const std::vector<Bin>& bins, const QuantScheme& scheme);

}  // namespace shrink::quant_detail
