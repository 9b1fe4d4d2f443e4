// Observer::create and the JSON round trip of every observer.
#include <cmath>
#include <limits>

#include "quant/observer_kinds.h"

namespace shrink {

using namespace quant_detail;

std::unique_ptr<Observer> Observer::create(const ObserverConfig& config) {
  const bool histogram_based = config.kind == ObserverKind::histogram || config.kind == ObserverKind::percentile ||
                               config.kind == ObserverKind::entropy || config.kind == ObserverKind::mse;
  if (histogram_based && config.granularity.kind != Granularity::per_tensor)
    throw UsageError("the " + std::string(observer_kind_name(config.kind)) + " observer is per tensor", {},
                     "use minmax or moving_average for per-channel or per-group ranges");
  if (config.kind == ObserverKind::percentile && !(config.percentile > 50 && config.percentile <= 100))
    throw UsageError("percentile must lie in (50, 100], got " + std::to_string(config.percentile));
  if (config.kind == ObserverKind::moving_average && !(config.averaging_constant > 0 && config.averaging_constant <= 1))
    throw UsageError("averaging constant must lie in (0, 1]");
  switch (config.kind) {
    case ObserverKind::minmax: return std::make_unique<MinMaxObserver>(config);
    case ObserverKind::moving_average: return std::make_unique<MovingAverageObserver>(config);
    default: return std::make_unique<HistogramObserver>(config);
  }
}

namespace quant_detail {

nlohmann::json config_json(const ObserverConfig& c) {
  static constexpr const char* kGranularity[] = {"per_tensor", "per_channel", "per_group"};
  return {{"granularity", kGranularity[int(c.granularity.kind)]}, {"axis", c.granularity.axis},
          {"group_size", c.granularity.group_size}, {"averaging_constant", c.averaging_constant},
          {"percentile", c.percentile}};
}

ObserverConfig config_from_json(const nlohmann::json& state) {
  ObserverConfig c;
  c.kind = observer_kind_from_name(state.at("kind").get<std::string>());
  const auto& j = state.at("config");
  const std::string granularity = j.at("granularity");
  c.granularity.kind = granularity == "per_channel" ? Granularity::per_channel
                       : granularity == "per_group" ? Granularity::per_group
                                                    : Granularity::per_tensor;
  c.granularity.axis = j.at("axis");
  c.granularity.group_size = j.at("group_size");
  c.averaging_constant = j.at("averaging_constant");
  c.percentile = j.at("percentile");
  return c;
}

nlohmann::json floats_json(const std::vector<float>& values) {
  nlohmann::json out = nlohmann::json::array();
  for (float v : values) out.push_back(std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr));
  return out;
}

std::vector<float> floats_from_json(const nlohmann::json& values, float null_value) {
  std::vector<float> out;
  for (const auto& v : values) out.push_back(v.is_null() ? null_value : v.get<float>());
  return out;
}

}  // namespace quant_detail

void MinMaxObserver::restore(const nlohmann::json& state) {
  observed_ = state.at("observed");
  shape_ = Shape(state.at("shape").get<std::vector<int64_t>>());
  block_ = state.at("block").get<std::vector<int64_t>>();
  low_ = floats_from_json(state.at("low"), std::numeric_limits<float>::infinity());
  high_ = floats_from_json(state.at("high"), -std::numeric_limits<float>::infinity());
}

void MovingAverageObserver::restore(const nlohmann::json& state) {
  observed_ = state.at("observed");
  shape_ = Shape(state.at("shape").get<std::vector<int64_t>>());
  block_ = state.at("block").get<std::vector<int64_t>>();
  for (const auto& batch : state.at("batches"))
    batches_.emplace_back(floats_from_json(batch.at("low"), std::numeric_limits<float>::infinity()),
                          floats_from_json(batch.at("high"), -std::numeric_limits<float>::infinity()));
}

std::unique_ptr<Observer> Observer::from_json(const nlohmann::json& state) {
  try {
    auto observer = create(config_from_json(state));
    if (auto* o = dynamic_cast<MinMaxObserver*>(observer.get())) o->restore(state);
    if (auto* o = dynamic_cast<MovingAverageObserver*>(observer.get())) o->restore(state);
    if (auto* o = dynamic_cast<HistogramObserver*>(observer.get())) o->restore(state);
    return observer;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(std::string("malformed observer state: ") + e.what());
  }
}

}  // namespace shrink
