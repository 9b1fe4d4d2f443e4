// Weight-only quantization of a language model's Linear layers (RTN, GPTQ, AWQ), block by block.
// Sequential calibration as in the GPTQ reference (llama.py): the calibration sequences are
// embedded, then for each transformer block, GPTQ by default in one pass (true-sequential): run
// the block up to the input of its first Linear layers (q/k/v) on the hidden states while
// accumulating their Hessian, quantize them, run on to the next Linear input (o) with them
// quantized, and so on through gate/up and down; the end of the pass is the quantized block's
// output, the next block's input. Without true_sequential: one pass accumulating every Hessian
// with the block unquantized, then a second pass with the quantized block. Peak memory: the f32
// model, plus the hidden states (samples x seq_len x dim x 4 bytes) and what the block's later
// nodes still need of each batch between stages (for a Llama block at most the residual stream
// and the MLP's hidden activations: dim + intermediate floats per token), plus one block's
// transient activations for one batch, plus the Hessians of one block. AWQ (awq.h) keeps, per
// block, the inputs of the two searched modules for the search sequences, the Gram matrices of o
// and down, and 512 rows per Linear input for the clipping search; the next block's inputs come
// from the quantized block, as for GPTQ (the AWQ reference computes them with the unquantized
// block).
#pragma once
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "shrink/compress/awq.h"
#include "shrink/compress/gptq.h"
#include "shrink/io/llm_import.h"

namespace shrink::compress {

struct LlmQuantizeOptions {
  std::string method = "gptq";  // "rtn", "gptq" or "awq"
  WeightOnlyConfig weights;
  GptqOptions gptq;
  // GPTQ: the Linear layers of a block in the order their inputs are produced (q/k/v, o,
  // gate/up, down), each calibrated on the inputs it gets once the layers before it are
  // quantized, in one pass over the block (GPTQ-for-LLaMa's --true-sequential; AutoGPTQ's
  // default). false: all of a block's Hessians from the unquantized block, then a second pass
  // with the quantized block (the GPTQ paper's opt.py).
  bool true_sequential = true;
  AwqOptions awq;
  // RTN with salient-channel protection (the experiment the AWQ paper starts from): the top
  // fraction of each layer's input channels by mean |x| on the calibration data stay 16-bit
  // (f16) and the others are quantized; 4-bit layers run as Int4Linear with an f16 side matrix.
  double keep_salient = 0;
  int64_t samples = 128, seq_len = 512;  // calibration windows
  uint64_t seed = 0;
  int64_t batch = 4;                      // sequences per forward pass
  std::vector<std::string> exclude = {"lm_head"};  // name globs kept f32
  bool quiet = false;
  // 4-bit results become Int4Linear nodes (packed nibbles, f16 scales and mins) run by the int4
  // kernels; otherwise, and for other bit widths, the Linear keeps the dequantized f32 weights.
  bool pack_int4 = true;
  // The output layer (lm_head, excluded above) as int8 per output channel with dynamic int8
  // activations (DynamicQuantLinear), untied from the embedding: at 4 bits the f32 head is
  // two thirds of the bytes a decoded token reads. Papers keep it 16-bit; llama.cpp's Q4 files
  // store it as Q6_K or Q8_0.
  bool int8_head = false;
};

struct LlmLayerReport {
  std::string name;
  double loss = 0;     // GPTQ's loss; RTN: squared weight error
  double damp = 0;
  int retries = 0;
  int64_t dead_columns = 0;
};

struct LlmQuantizeReport {
  std::vector<LlmLayerReport> layers;
  double seconds = 0;
  int64_t calibration_tokens = 0;
  int64_t hidden_state_bytes = 0;  // one copy of the calibration hidden states
  int64_t peak_rss_bytes = 0;      // of the process, at the end
  std::vector<AwqGroupReport> awq_groups;  // AWQ's chosen scales per group of layers
  int64_t salient_weights = 0;             // weights kept 16-bit by keep_salient
};

// Random windows of seq_len tokens from the stream (start positions uniform, seeded), as the
// GPTQ reference samples its calibration data.
std::vector<std::vector<int32_t>> sample_calibration(std::span<const int32_t> stream, int64_t samples,
                                                     int64_t seq_len, uint64_t seed);

// Each quantized Linear records attrs weight_quant = {method, bits, group_size, symmetric, ...}
// and becomes an Int4Linear (see pack_int4) or keeps its weights dequantized.
LlmQuantizeReport quantize_language_model(io::LanguageModel& model,
                                          const std::vector<std::vector<int32_t>>& calibration,
                                          const LlmQuantizeOptions& options);

}  // namespace shrink::compress
