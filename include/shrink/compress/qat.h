// Quantization-aware training (PyTorch's prepare_qat / convert, with the fusions and stubs found
// automatically):
//   prepare_qat — Conv2d/Linear fake-quantize their weights per output channel (attribute
//     weight_bits) and a FakeQuantize node (moving-average min/max, u8 [0, 127]) follows every
//     activation that the static int8 region would requantize — found by running the static
//     converter on a batch-norm-folded copy, so QAT simulates exactly the int8 model it becomes.
//   set_observing — freezes (or thaws) every FakeQuantize range; fold_batch_norms (from
//     quantize_static.h) freezes batch norms by folding their running statistics into the layers.
//   convert_qat — folds what is left, turns the FakeQuantize ranges into the activation qparams
//     and runs the static converter: the int8 graph computes on the fake-quantized grid.
#pragma once
#include <string>
#include <vector>

#include "shrink/compress/quantize_static.h"

namespace shrink::compress {

struct QatConfig {
  int weight_bits = 8;               // 2..8
  std::vector<std::string> exclude;  // node-name globs kept f32
  double averaging = 0.01;           // moving-average constant of the activation ranges
};

// Returns the names of the FakeQuantize nodes it inserted.
std::vector<std::string> prepare_qat(nn::Graph& graph, const QatConfig& config);
void set_observing(nn::Graph& graph, bool observe);
StaticQuantResult convert_qat(const nn::Graph& graph, const QatConfig& config);

}  // namespace shrink::compress
