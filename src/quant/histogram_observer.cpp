// The histogram-based observers: one bf16 histogram, and the range search named by the kind.
#include <cmath>

#include "quant/observer_kinds.h"
#include "quant/range_search.h"

namespace shrink {

using namespace quant_detail;

void HistogramObserver::observe(const Tensor& input) {
  const Tensor x = finite_f32(input);
  const uint64_t before = histogram_.total();
  histogram_.add(x.data<float>(), x.numel());
  observed_ += int64_t(histogram_.total() - before);
}

void HistogramObserver::merge(const Observer& other_base) {
  const auto* other = dynamic_cast<const HistogramObserver*>(&other_base);
  if (!other || other->config_.kind != config_.kind) throw UsageError("cannot merge observers of different kinds");
  histogram_.merge(other->histogram_);
  observed_ += other->observed_;
}

ObservedRange HistogramObserver::range(const QuantScheme& scheme) const {
  require_observed();
  scheme.validate();
  const std::vector<Bin> bins = histogram_.bins();
  Range r;
  switch (config_.kind) {
    case ObserverKind::histogram: r = greedy_l2_range(bins, scheme); break;
    case ObserverKind::percentile: r = percentile_range(bins, config_.percentile); break;
    case ObserverKind::mse: r = mse_range(bins, scheme); break;
    case ObserverKind::entropy: r = entropy_range(bins, scheme); break;
    default: throw UsageError("not a histogram observer");
  }
  return {vector_tensor(Shape({}), {float(r.first)}), vector_tensor(Shape({}), {float(r.second)})};
}

nlohmann::json HistogramObserver::to_json() const {
  return {{"kind", observer_kind_name(config_.kind)}, {"config", config_json(config_)}, {"observed", observed_},
          {"histogram", histogram_.to_json()}};
}

void HistogramObserver::restore(const nlohmann::json& state) {
  histogram_ = Bf16Histogram::from_json(state.at("histogram"));
  observed_ = int64_t(histogram_.total());
}

}  // namespace shrink
