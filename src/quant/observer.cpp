// Observer factory, JSON round trip, and the min-max and moving-average observers.
#include <algorithm>
#include <cmath>
#include <limits>

#include "quant/blocks.h"
#include "quant/observer_kinds.h"

namespace shrink {
namespace {

constexpr std::string_view kKindNames[] = {"minmax", "moving_average", "histogram", "percentile", "entropy", "mse"};

}  // namespace

std::string_view observer_kind_name(ObserverKind kind) { return kKindNames[int(kind)]; }

ObserverKind observer_kind_from_name(std::string_view name) {
  for (int i = 0; i < int(std::size(kKindNames)); ++i)
    if (kKindNames[i] == name) return ObserverKind(i);
  throw UsageError("unknown observer '" + std::string(name) + "'", {},
                   "choose minmax, moving_average, histogram, percentile, entropy or mse");
}

std::vector<int64_t> Granularity::block_for(const Shape& shape) const {
  switch (kind) {
    case per_tensor: return {};  // any shape: activation batches vary in size
    case per_channel: return per_channel_block(shape, axis);
    case per_group: return per_group_block(shape, group_size, axis);
  }
  return {};
}

QParams Observer::qparams(const QuantScheme& scheme) const {
  ObservedRange r = range(scheme);
  return qparams_from_range(r.low, r.high, scheme, block_);
}

void Observer::require_observed() const {
  if (observed_ == 0)
    throw UsageError("the " + std::string(observer_kind_name(config_.kind)) + " observer has seen no finite values", {},
                     "calibrate with at least one batch of data");
}

namespace quant_detail {

Tensor finite_f32(const Tensor& x) {
  if (!dtype_is_float(x.dtype())) throw UsageError("observers watch float tensors, got " + std::string(dtype_name(x.dtype())));
  return x.dtype() == DType::f32 ? x.contiguous() : x.to(DType::f32);
}

// Per-block min and max of one tensor; blocks with no finite value get +inf / -inf.
std::pair<std::vector<float>, std::vector<float>> block_min_max(const Tensor& x, const std::vector<int64_t>& block,
                                                                 int64_t& finite) {
  const int64_t blocks = qparams_shape(x.shape(), block).numel();
  std::vector<float> lo(size_t(blocks), std::numeric_limits<float>::infinity());
  std::vector<float> hi(size_t(blocks), -std::numeric_limits<float>::infinity());
  const float* data = x.data<float>();
  for_each_element(x.shape(), block, [&](int64_t e, int64_t b) {
    if (!std::isfinite(data[e])) return;
    lo[size_t(b)] = std::min(lo[size_t(b)], data[e]);
    hi[size_t(b)] = std::max(hi[size_t(b)], data[e]);
    ++finite;
  });
  return {lo, hi};
}

Tensor vector_tensor(const Shape& shape, const std::vector<float>& values) {
  Tensor t = Tensor::empty(shape, DType::f32);
  std::copy(values.begin(), values.end(), t.mutable_data<float>());
  return t;
}

}  // namespace quant_detail

using namespace quant_detail;

// ---- min-max ----

void MinMaxObserver::observe(const Tensor& input) {
  const Tensor x = finite_f32(input);
  const auto block = config_.granularity.block_for(x.shape());
  auto [lo, hi] = block_min_max(x, block, observed_);
  if (low_.empty()) {
    block_ = block;
    shape_ = x.shape();
    low_ = lo;
    high_ = hi;
    return;
  }
  check_same_blocks(lo.size(), x.shape());
  for (size_t i = 0; i < lo.size(); ++i) {
    low_[i] = std::min(low_[i], lo[i]);
    high_[i] = std::max(high_[i], hi[i]);
  }
}

void Observer::check_same_blocks(size_t blocks, const Shape& shape) const {
  if (int64_t(blocks) != qparams_shape(shape_, block_).numel())
    throw UsageError("observed a tensor of shape " + shape.to_string() + " after tensors of shape " + shape_.to_string() +
                     " with a different number of channels or groups");
}

void MinMaxObserver::merge(const Observer& other_base) {
  const auto* other = dynamic_cast<const MinMaxObserver*>(&other_base);
  if (!other || other->config_.kind != config_.kind) throw UsageError("cannot merge observers of different kinds");
  if (other->low_.empty()) return;
  if (low_.empty()) {
    *this = *other;
    return;
  }
  if (other->low_.size() != low_.size()) throw UsageError("cannot merge observers with different numbers of blocks");
  for (size_t i = 0; i < low_.size(); ++i) {
    low_[i] = std::min(low_[i], other->low_[i]);
    high_[i] = std::max(high_[i], other->high_[i]);
  }
  observed_ += other->observed_;
}

ObservedRange MinMaxObserver::range(const QuantScheme&) const {
  require_observed();
  const Shape blocks = qparams_shape(shape_, block_);
  std::vector<float> lo = low_, hi = high_;
  for (size_t i = 0; i < lo.size(); ++i)
    if (lo[i] > hi[i]) lo[i] = hi[i] = 0;  // a block that only saw non-finite values
  return {vector_tensor(blocks, lo), vector_tensor(blocks, hi)};
}

nlohmann::json MinMaxObserver::to_json() const {
  return {{"kind", observer_kind_name(config_.kind)}, {"config", config_json(config_)}, {"observed", observed_},
          {"shape", shape_.dims().to_vector()}, {"block", block_}, {"low", floats_json(low_)}, {"high", floats_json(high_)}};
}

// ---- moving average ----

void MovingAverageObserver::observe(const Tensor& input) {
  const Tensor x = finite_f32(input);
  const auto block = config_.granularity.block_for(x.shape());
  int64_t finite = 0;
  auto [lo, hi] = block_min_max(x, block, finite);
  if (finite == 0) return;  // PyTorch skips such batches too
  if (batches_.empty()) {
    block_ = block;
    shape_ = x.shape();
  } else {
    check_same_blocks(lo.size(), x.shape());
  }
  observed_ += finite;
  batches_.push_back({lo, hi});
}

void MovingAverageObserver::merge(const Observer& other_base) {
  const auto* other = dynamic_cast<const MovingAverageObserver*>(&other_base);
  if (!other) throw UsageError("cannot merge observers of different kinds");
  if (!batches_.empty() && !other->batches_.empty() && batches_[0].first.size() != other->batches_[0].first.size())
    throw UsageError("cannot merge observers with different numbers of blocks");
  if (batches_.empty()) {
    block_ = other->block_;
    shape_ = other->shape_;
  }
  batches_.insert(batches_.end(), other->batches_.begin(), other->batches_.end());
  observed_ += other->observed_;
}

ObservedRange MovingAverageObserver::range(const QuantScheme&) const {
  require_observed();
  std::vector<float> lo = batches_[0].first, hi = batches_[0].second;
  const float c = config_.averaging_constant;
  for (size_t b = 1; b < batches_.size(); ++b)
    for (size_t i = 0; i < lo.size(); ++i) {
      const float blo = batches_[b].first[i], bhi = batches_[b].second[i];
      if (std::isfinite(blo)) lo[i] = std::isfinite(lo[i]) ? lo[i] + c * (blo - lo[i]) : blo;
      if (std::isfinite(bhi)) hi[i] = std::isfinite(hi[i]) ? hi[i] + c * (bhi - hi[i]) : bhi;
    }
  for (size_t i = 0; i < lo.size(); ++i)
    if (!(lo[i] <= hi[i])) lo[i] = hi[i] = 0;
  const Shape blocks = qparams_shape(shape_, block_);
  return {vector_tensor(blocks, lo), vector_tensor(blocks, hi)};
}

nlohmann::json MovingAverageObserver::to_json() const {
  nlohmann::json batches = nlohmann::json::array();
  for (const auto& [lo, hi] : batches_) batches.push_back({{"low", floats_json(lo)}, {"high", floats_json(hi)}});
  return {{"kind", observer_kind_name(config_.kind)}, {"config", config_json(config_)}, {"observed", observed_},
          {"shape", shape_.dims().to_vector()}, {"block", block_}, {"batches", batches}};
}

}  // namespace shrink
