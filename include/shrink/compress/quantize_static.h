// Static (post-training) int8 quantization with calibration, PyTorch's prepare / calibrate /
// convert workflow without the manual steps:
//   1. fold_batch_norms: Conv2d+BatchNorm2d and Linear+BatchNorm1d become one layer (exact in
//      evaluation mode); Dropout, a no-op at inference, is removed.
//   2. Calibrator: runs calibration batches and observes every activation with the chosen observer.
//   3. convert_static: fuses Conv2d/Linear(+ReLU) and Add(+ReLU) into int8 nodes (QuantConv2d,
//      QuantLinear, QuantAdd) whose epilogues requantize, lets MaxPool2d and Flatten run on u8, and
//      inserts Quantize/Dequantize wherever the int8 region meets f32 (graph inputs and outputs,
//      layers kept f32 by --exclude or because they have no int8 kernel).
// Weights: i8 symmetric per output channel. Activations: u8 in [0, 127] per tensor (7 bits so the
// AVX2 kernels cannot saturate; PyTorch's reduce_range on x86 does the same).
#pragma once
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shrink/nn/graph.h"
#include "shrink/quant/observer.h"

namespace shrink::compress {

// Returns the names of the folded batch norms and removed dropouts.
std::vector<std::string> fold_batch_norms(nn::Graph& graph);

// Where conversion gets the u8 [0, 127] qparams of an activation (a value id of the graph being
// converted): calibration observers, or the ranges QAT learned.
class ActivationQParamsSource {
 public:
  virtual ~ActivationQParamsSource() = default;
  virtual std::pair<float, int32_t> qparams(int value) const = 0;  // UsageError when unknown
};

class Calibrator final : public ActivationQParamsSource {
 public:
  explicit Calibrator(ObserverConfig observer);
  // One forward pass in evaluation mode, observing every f32 value.
  void observe(nn::Graph& graph, std::span<const Tensor> inputs);
  int64_t batches() const { return batches_; }
  ObserverKind observer_kind() const { return config_.kind; }
  // u8 [0, 127] qparams (scale, zero) of a value; UsageError if it was never observed.
  std::pair<float, int32_t> qparams(int value) const override;
  // Every observer's state by value name, for the model file ({"observer", "batches", "values"}),
  // and a calibrator rebuilt from it for the same f32 graph (after fold_batch_norms): converting
  // again (other weight bits, other exclusions) without running calibration again. UsageError
  // for a state that names values the graph lacks or holds no observers.
  nlohmann::json state(const nn::Graph& graph) const;
  static Calibrator from_state(const nn::Graph& graph, const nlohmann::json& state);

 private:
  ObserverConfig config_;
  std::map<int, std::unique_ptr<Observer>> observers_;
  int64_t batches_ = 0;
};

struct StaticQuantConfig {
  std::vector<std::string> exclude;  // node-name globs kept f32
  int weight_bits = 8;               // 2..8: fewer bits still run on the int8 kernels
};

struct StaticQuantLayer {
  std::string node, kind;          // in the f32 graph; kind "Conv2d+ReLU" for fused groups
  std::string quantized_kind;      // "QuantConv2d", or empty when kept f32
  std::string reason;              // why it was kept f32
  std::string output_value;        // name of the f32 value it produces (for per-layer error)
};

struct StaticQuantResult {
  nn::Graph graph;
  std::vector<StaticQuantLayer> layers;
};

// The f32 graph (after fold_batch_norms) and its calibration -> a new int8 graph.
StaticQuantResult convert_static(const nn::Graph& graph, const ActivationQParamsSource& qparams,
                                 const StaticQuantConfig& config);

// Per-layer error of the quantized graph against the f32 graph on the same inputs: for each
// quantized layer's output, SQNR (dB) and cosine similarity of the dequantized value vs f32.
struct LayerError {
  std::string node, value;
  double sqnr_db = 0, cosine = 0;
};
std::vector<LayerError> layer_errors(nn::Graph& f32, nn::Graph& quantized, const std::vector<StaticQuantLayer>& layers,
                                     std::span<const Tensor> inputs);

}  // namespace shrink::compress
