// Helpers shared by the Hugging Face folder importers (llama_import.cpp, bert_import.cpp).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "shrink/io/safetensors.h"

namespace shrink::io {

nlohmann::json read_json_file(const std::string& path);  // a JSON object; IoError / FormatError otherwise
// config.json's integer `key` (json::out_of_range when it is missing; FormatError when it is not an
// integer that fits: a float such as 2.6e31 was cast to int64, which is undefined).
int64_t hf_config_integer(const nlohmann::json& config, const char* key, const std::string& folder);
// The tensor `name` of model.safetensors as contiguous f32, checked against `shape`.
Tensor safetensors_weight(const SafetensorsFile& file, const std::string& folder, const std::string& name,
                          const Shape& shape);

}  // namespace shrink::io
