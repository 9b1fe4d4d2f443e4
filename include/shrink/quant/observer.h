// Observers watch tensors during calibration and propose a range [low, high] per block, from which
// qparams follow. Every observer merges exactly: observing batches in chunks and merging the
// chunks gives the same answer as observing them in one go (moving averages keep their per-batch
// ranges and fold them in order; histograms bin by bfloat16 bit pattern, so counts simply add).
// State round-trips through JSON, for storing calibration in a model file.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "shrink/quant/scheme.h"

namespace shrink {

enum class ObserverKind {
  minmax,          // running min and max (per tensor, per channel or per group)
  moving_average,  // exponential moving average of per-batch min and max (PyTorch's)
  histogram,       // PyTorch's HistogramObserver idea: shrink the range, least L2 error wins
  percentile,      // clip at the p-th and (100-p)-th percentiles
  entropy,         // TensorRT's KL-divergence calibration (symmetric threshold)
  mse,             // grid search of clipping ratios minimising the quantization MSE
};
std::string_view observer_kind_name(ObserverKind kind);
ObserverKind observer_kind_from_name(std::string_view name);  // UsageError listing the choices

struct Granularity {
  enum Kind { per_tensor, per_channel, per_group } kind = per_tensor;
  int axis = 0;            // channel or group axis (negative counts from the end)
  int64_t group_size = 0;  // per_group only
  std::vector<int64_t> block_for(const Shape& shape) const;
};

struct ObserverConfig {
  ObserverKind kind = ObserverKind::minmax;
  Granularity granularity;          // histogram-based observers are per tensor only
  float averaging_constant = 0.01f;  // moving_average
  float percentile = 99.99f;         // percentile, in (50, 100]
};

struct ObservedRange {
  Tensor low, high;  // f32, one value per block
};

class Observer {
 public:
  static std::unique_ptr<Observer> create(const ObserverConfig& config);  // UsageError if invalid
  static std::unique_ptr<Observer> from_json(const nlohmann::json& state);
  virtual ~Observer() = default;

  virtual void observe(const Tensor& x) = 0;        // any float dtype; non-finite values ignored
  virtual void merge(const Observer& other) = 0;     // UsageError for a different kind or shape
  // The range to quantize with; histogram-based searches need the scheme they optimise for.
  virtual ObservedRange range(const QuantScheme& scheme) const = 0;
  virtual nlohmann::json to_json() const = 0;

  QParams qparams(const QuantScheme& scheme) const;  // range -> qparams_from_range
  const ObserverConfig& config() const { return config_; }
  int64_t observed() const { return observed_; }  // finite values seen

 protected:
  explicit Observer(ObserverConfig config) : config_(std::move(config)) {}
  void require_observed() const;  // UsageError when nothing was observed
  void check_same_blocks(size_t blocks, const Shape& shape) const;
  ObserverConfig config_;
  int64_t observed_ = 0;
  std::vector<int64_t> block_;  // from the first observed tensor
  Shape shape_;                 // ditto
};

}  // namespace shrink
