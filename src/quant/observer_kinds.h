// The observer classes behind Observer::create (internal to the quant floor).
#pragma once
#include <utility>
#include <vector>

#include "quant/bf16_histogram.h"
#include "shrink/quant/observer.h"

namespace shrink {

namespace quant_detail {
Tensor finite_f32(const Tensor& x);
std::pair<std::vector<float>, std::vector<float>> block_min_max(const Tensor& x, const std::vector<int64_t>& block,
                                                                 int64_t& finite);
Tensor vector_tensor(const Shape& shape, const std::vector<float>& values);
nlohmann::json config_json(const ObserverConfig& config);
ObserverConfig config_from_json(const nlohmann::json& state);
nlohmann::json floats_json(const std::vector<float>& values);  // non-finite values as null
std::vector<float> floats_from_json(const nlohmann::json& values, float null_value);
}  // namespace quant_detail

class MinMaxObserver final : public Observer {
 public:
  explicit MinMaxObserver(ObserverConfig config) : Observer(std::move(config)) {}
  void observe(const Tensor& x) override;
  void merge(const Observer& other) override;
  ObservedRange range(const QuantScheme& scheme) const override;
  nlohmann::json to_json() const override;
  void restore(const nlohmann::json& state);

 private:
  std::vector<float> low_, high_;  // per block
};

class MovingAverageObserver final : public Observer {
 public:
  explicit MovingAverageObserver(ObserverConfig config) : Observer(std::move(config)) {}
  void observe(const Tensor& x) override;
  void merge(const Observer& other) override;
  ObservedRange range(const QuantScheme& scheme) const override;
  nlohmann::json to_json() const override;
  void restore(const nlohmann::json& state);

 private:
  std::vector<std::pair<std::vector<float>, std::vector<float>>> batches_;  // per-batch ranges, in order
};

// histogram, percentile, entropy and mse: one bf16 histogram, four range searches.
class HistogramObserver final : public Observer {
 public:
  explicit HistogramObserver(ObserverConfig config) : Observer(std::move(config)) {}
  void observe(const Tensor& x) override;
  void merge(const Observer& other) override;
  ObservedRange range(const QuantScheme& scheme) const override;
  nlohmann::json to_json() const override;
  void restore(const nlohmann::json& state);

 private:
  quant_detail::Bf16Histogram histogram_;
};

}  // namespace shrink
