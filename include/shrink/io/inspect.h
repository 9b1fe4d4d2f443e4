// What is in a model file: format, architecture, metadata, tensors, parameter and byte totals.
// Works on GGUF files, safetensors files and Hugging Face model folders (model.safetensors, or
// shards listed by model.safetensors.index.json, plus config.json); the format is recognised from
// the bytes, not the file name.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace shrink {

struct TensorSummary {
  std::string name;
  std::string dtype;  // "Q4_1", "F32", "bf16"...
  std::vector<int64_t> shape;  // row-major
  int64_t params = 0;  // elements
  uint64_t bytes = 0;
  bool is_buffer = false;  // integer or bool data (ids, masks): counted apart from parameters
};

// One node of a shrink model's graph, as inspect shows it.
struct GraphNodeSummary {
  std::string name, kind;
  std::vector<std::string> inputs;  // value names
  std::vector<int64_t> output_shape;  // first output; -1 where fixed at run time
  int64_t params = 0;  // trainable elements
};

struct ModelSummary {
  std::string path;
  std::string format;  // "gguf" or "safetensors"
  std::string format_version;
  int shards = 1;           // safetensors checkpoints split over several files
  uint64_t file_bytes = 0;  // all files together
  // Key facts in a fixed vocabulary: architecture, name, layers, hidden size, heads, vocabulary...
  std::vector<std::pair<std::string, std::string>> architecture;
  nlohmann::ordered_json metadata;  // every metadata entry, arrays abbreviated
  std::vector<TensorSummary> tensors;
  std::vector<GraphNodeSummary> graph;  // shrink model files only
  int64_t total_params = 0;         // elements of float and quantized tensors
  uint64_t total_param_bytes = 0;
  int64_t total_buffer_elements = 0;  // elements of integer tensors
  uint64_t total_tensor_bytes = 0;    // everything
  double bits_per_weight() const {
    return total_params ? 8.0 * double(total_param_bytes) / double(total_params) : 0.0;
  }
};

ModelSummary summarize_model(const std::string& path);
nlohmann::ordered_json to_json(const ModelSummary& summary);

}  // namespace shrink
