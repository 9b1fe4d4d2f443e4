// Writing GGUF (version 3) files that llama.cpp loads, and the export of shrink's Llama language
// models into them: metadata (llama.* hyper-parameters, the tokenizer as tokenizer.ggml.*),
// q/k rows permuted back to llama.cpp's interleaved rotary layout, and tensors as
// - Q4_1 for Int4Linear layers (exact: the int4 layout's blocks of 32 nibbles with the group's f16
//   scale and min are Q4_1 blocks, whatever the group size, a multiple of 32),
// - Q4_0 for Int4Linear layers that are symmetric (min = -8 scale in every block), when asked,
// - Q8_0 or F32 for the other matrices (an int8 DynamicQuantLinear head dequantized first), F32
//   for norms.
#pragma once
#include <string>
#include <vector>

#include "shrink/io/gguf.h"
#include "shrink/io/llm_import.h"

namespace shrink {

struct GgufTensorData {
  std::string name;
  GgmlType type = GgmlType::f32;
  Shape shape;  // row-major (ne reversed)
  std::vector<uint8_t> bytes;
};

// Writes atomically; alignment 32. Values are written with their GgufValue types.
void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorData>& tensors);

struct GgufExportOptions {
  bool prefer_q4_0 = false;  // symmetric 4-bit layers as Q4_0 (else Q4_1)
  GgmlType other_matrices = GgmlType::f32;  // f32 or q8_0: embedding and non-int4 Linear weights
};
struct GgufExportReport {
  int64_t q4_0 = 0, q4_1 = 0, q8_0 = 0, f32 = 0;  // tensors of each type
  uint64_t bytes = 0;
};
GgufExportReport export_llama_gguf(const io::LanguageModel& model, const std::string& path,
                                   const GgufExportOptions& options = {});

}  // namespace shrink
