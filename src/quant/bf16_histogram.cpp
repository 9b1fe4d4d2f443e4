// The bfloat16-binned histogram.
#include "quant/bf16_histogram.h"

#include <bit>
#include <cmath>

#include "shrink/core/error.h"

namespace shrink::quant_detail {

void Bf16Histogram::add(const float* values, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(values[i]);
    if ((bits & 0x7f800000u) == 0x7f800000u) continue;  // inf, nan
    ++counts_[bits >> 16];
    ++total_;
  }
}

void Bf16Histogram::merge(const Bf16Histogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
}

std::vector<Bin> Bf16Histogram::bins() const {
  auto edge = [](uint32_t pattern) { return double(std::bit_cast<float>(pattern << 16)); };
  std::vector<Bin> out;
  for (uint32_t p = 0xffff; p >= 0x8000; --p)  // negative values, most negative first
    if (counts_[p]) out.push_back({-edge((p & 0x7fff) + 1), -edge(p & 0x7fff), counts_[p]});
  for (uint32_t p = 0; p < 0x7f80; ++p)
    if (counts_[p]) out.push_back({edge(p), edge(p + 1), counts_[p]});
  return out;
}

nlohmann::json Bf16Histogram::to_json() const {
  nlohmann::json sparse = nlohmann::json::array();
  for (size_t i = 0; i < counts_.size(); ++i)
    if (counts_[i]) sparse.push_back({i, counts_[i]});
  return sparse;
}

Bf16Histogram Bf16Histogram::from_json(const nlohmann::json& state) {
  Bf16Histogram h;
  if (!state.is_array()) throw FormatError("histogram state is not an array");
  for (const auto& entry : state) {
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_number_unsigned() || !entry[1].is_number_unsigned() ||
        entry[0].get<uint64_t>() >= 65536)
      throw FormatError("histogram state has a malformed bin");
    h.counts_[entry[0].get<size_t>()] += entry[1].get<uint64_t>();
    h.total_ += entry[1].get<uint64_t>();
  }
  return h;
}

}  // namespace shrink::quant_detail
