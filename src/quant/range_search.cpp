// Histogram range searches for the histogram, percentile, mse and entropy observers.
#include "quant/range_search.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace shrink::quant_detail {
namespace {

Tensor scalar(double v) {
  Tensor t = Tensor::empty({1}, DType::f32);
  t.mutable_data<float>()[0] = float(v);
  return t;
}

}  // namespace

double quantization_error(const std::vector<Bin>& bins, double low, double high, const QuantScheme& scheme) {
  const QParams qp = qparams_from_range(scalar(low), scalar(high), scheme, {1});
  const double scale = qp.scale.data<float>()[0], zero = qp.zero.data<float>()[0];
  const double min = qp.min.defined() ? qp.min.data<float>()[0] : 0.0;
  const double qmin = scheme.quant_min(), qmax = scheme.quant_max();
  double error = 0;
  for (const Bin& bin : bins) {
    const double centre = 0.5 * (bin.low + bin.high);
    double back;
    if (qp.min.defined()) {
      back = std::clamp(std::nearbyint((centre - min) / scale), qmin, qmax) * scale + min;
    } else {
      back = (std::clamp(std::nearbyint(centre / scale) + zero, qmin, qmax) - zero) * scale;
    }
    error += double(bin.count) * (centre - back) * (centre - back);
  }
  return error;
}

Range percentile_range(const std::vector<Bin>& bins, double p) {
  uint64_t total = 0;
  for (const Bin& bin : bins) total += bin.count;
  auto quantile = [&](double fraction) {
    const double target = fraction * double(total);
    double below = 0;
    for (const Bin& bin : bins) {
      if (below + double(bin.count) >= target) return bin.low + (bin.high - bin.low) * (target - below) / double(bin.count);
      below += double(bin.count);
    }
    return bins.back().high;
  };
  return {quantile(1.0 - p / 100.0), quantile(p / 100.0)};
}

Range greedy_l2_range(const std::vector<Bin>& bins, const QuantScheme& scheme) {
  // Walks the whole path rather than stopping at the first rise (PyTorch stops there, and a
  // few isolated outliers make that rise come early); keeps the best range seen.
  size_t left = 0, right = bins.size() - 1;
  Range best = {bins[left].low, bins[right].high};
  double best_error = quantization_error(bins, best.first, best.second, scheme);
  while (left < right) {
    if (bins[left].count <= bins[right].count) {  // the lighter end moves in first
      ++left;
    } else {
      --right;
    }
    const double error = quantization_error(bins, bins[left].low, bins[right].high, scheme);
    if (error < best_error) {
      best_error = error;
      best = {bins[left].low, bins[right].high};
    }
  }
  return best;
}

Range mse_range(const std::vector<Bin>& bins, const QuantScheme& scheme) {
  const double low = bins.front().low, high = bins.back().high;
  Range best = {low, high};
  double best_error = std::numeric_limits<double>::infinity();
  const bool both_ends = scheme.mapping == QuantMapping::affine;
  for (int a = 100; a >= 20; --a) {
    for (int b = both_ends ? 100 : a; b >= (both_ends ? 20 : a); --b) {
      const double candidate_low = low * a / 100.0, candidate_high = high * b / 100.0;
      const double error = quantization_error(bins, candidate_low, candidate_high, scheme);
      if (error < best_error) {
        best_error = error;
        best = {candidate_low, candidate_high};
      }
    }
  }
  return best;
}

Range entropy_range(const std::vector<Bin>& bins, const QuantScheme& scheme) {
  constexpr int kBins = 2048;
  const double data_low = bins.front().low, data_high = bins.back().high;
  const double amax = std::max(std::fabs(data_low), std::fabs(data_high));
  if (amax == 0) return {0, 0};
  // |x| histogram on linear bins, spreading each bf16 bin's count uniformly over its interval.
  std::vector<double> hist(kBins, 0.0);
  const double width = amax / kBins;
  for (const Bin& bin : bins) {
    double a = std::fabs(bin.low), b = std::fabs(bin.high);
    if (a > b) std::swap(a, b);
    if (bin.low < 0 && bin.high > 0) a = 0;
    const int first = std::min(kBins - 1, int(a / width)), last = std::min(kBins - 1, int(b / width));
    if (first == last || b == a) {
      hist[size_t(first)] += double(bin.count);
      continue;
    }
    for (int k = first; k <= last; ++k) {
      const double overlap = std::min(b, (k + 1) * width) - std::max(a, k * width);
      if (overlap > 0) hist[size_t(k)] += double(bin.count) * overlap / (b - a);
    }
  }
  const int levels = 1 << (scheme.bits - 1);
  double best_kl = std::numeric_limits<double>::infinity();
  int best_i = kBins;
  std::vector<double> p, q;
  for (int i = levels; i <= kBins; ++i) {
    p.assign(hist.begin(), hist.begin() + i);
    for (int k = i; k < kBins; ++k) p[size_t(i - 1)] += hist[size_t(k)];  // clip the outliers into the last bin
    // Merge the i reference bins into `levels` bins (the last takes the remainder), then expand
    // each back over the bins that were non-empty in the reference.
    q.assign(size_t(i), 0.0);
    const int merged = i / levels;
    for (int j = 0; j < levels; ++j) {
      const int start = j * merged, stop = j == levels - 1 ? i : start + merged;
      double total = 0;
      int nonzero = 0;
      for (int k = start; k < stop; ++k) {
        total += hist[size_t(k)];  // the clipped histogram, without the outliers
        nonzero += p[size_t(k)] > 0;
      }
      for (int k = start; k < stop; ++k) q[size_t(k)] = p[size_t(k)] > 0 ? total / nonzero : 0;
    }
    double p_sum = 0, q_sum = 0;
    for (int k = 0; k < i; ++k) {
      p_sum += p[size_t(k)];
      q_sum += q[size_t(k)];
    }
    if (p_sum == 0 || q_sum == 0) continue;
    double kl = 0;
    for (int k = 0; k < i; ++k) {
      if (p[size_t(k)] == 0) continue;
      const double pk = p[size_t(k)] / p_sum, qk = std::max(q[size_t(k)] / q_sum, 1e-12);
      kl += pk * std::log(pk / qk);
    }
    if (kl < best_kl) {
      best_kl = kl;
      best_i = i;
    }
  }
  const double threshold = (best_i + 0.5) * width;
  return {std::max(data_low, -threshold), std::min(data_high, threshold)};
}

}  // namespace shrink::quant_detail
