// Helpers shared by the Hugging Face folder importers (llama_import.cpp, bert_import.cpp).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "shrink/io/safetensors.h"

namespace shrink::io {

nlohmann::json read_json_file(const std::string& path);  // IoError / FormatError
// The tensor `name` of model.safetensors as contiguous f32, checked against `shape`.
Tensor safetensors_weight(const SafetensorsFile& file, const std::string& folder, const std::string& name,
                          const Shape& shape);

}  // namespace shrink::io
