// What shrink reads from an ONNX file (a ModelProto in the protocol-buffers encoding): its
// header, the main graph's inputs and outputs, every node's op type, and every floating-point
// tensor it carries (initializers and Constant nodes' values, in the main graph and in every
// subgraph of If/Loop nodes), converted to f32. Which architecture those tensors make is the
// importer's business (onnx_import.cpp); this reader only validates and collects.
// Schema: https://github.com/onnx/onnx/blob/main/onnx/onnx.proto
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "shrink/core/mapped_file.h"
#include "shrink/core/tensor.h"

namespace shrink::io {

struct OnnxModel {
  int64_t ir_version = 0;
  std::string producer;        // producer_name (and version when given)
  int64_t opset = 0;           // of the default domain ("" or "ai.onnx"); 0 when not stated
  std::vector<std::string> inputs, outputs;  // the main graph's
  std::map<std::string, int64_t> op_counts;  // node op types, subgraphs included
  std::map<std::string, Tensor> tensors;     // float32/float16 tensors by name, as f32
  std::map<std::string, DType> stored_as;    // each tensor's type in the file (f32 or f16)
};

// Throws FormatError for a damaged file (truncated fields, sizes that disagree with the data,
// nesting deeper than 32 graphs) and UnsupportedError for tensors stored in external files.
OnnxModel read_onnx(const ByteSource& source);

}  // namespace shrink::io
