// A histogram with one bin per bfloat16 value: a float falls in the bin of its top 16 bits.
// Bins are log-spaced (relative width 1/128), exact to merge, and independent of observation
// order; non-finite values are not counted. Used by the histogram-based observers.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace shrink::quant_detail {

struct Bin {
  double low, high;  // value interval
  uint64_t count;
};

class Bf16Histogram {
 public:
  Bf16Histogram() : counts_(65536, 0) {}
  void add(const float* values, int64_t n);
  void merge(const Bf16Histogram& other);
  uint64_t total() const { return total_; }
  // Non-empty bins in increasing value order.
  std::vector<Bin> bins() const;
  nlohmann::json to_json() const;  // sparse: [[pattern, count], ...]
  static Bf16Histogram from_json(const nlohmann::json& state);

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
};

}  // namespace shrink::quant_detail
