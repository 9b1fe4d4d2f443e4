// shrink's own model file: safetensors whose "__metadata__" holds the graph as JSON
// ("shrink.graph"), the format tag ("shrink.format": "shrink-model/1") and how the file was made
// ("shrink.provenance": JSON). Parameters are tensors named "<node>.<param>"; weights with 10% or
// more zeros are stored as "<node>.<param>.mask" (one bit per weight) and ".nonzero" (the nonzero
// values), so a pruned model's file shrinks with its sparsity. Loading validates everything and
// rebuilds the exact graph (names, attributes, wiring, buffers).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "shrink/nn/graph.h"

namespace shrink::io {

inline constexpr const char* kNativeFormatTag = "shrink-model/1";

struct LoadedModel {
  nn::Graph graph;
  nlohmann::json provenance;  // object; empty when the file records none
};

nlohmann::json graph_to_json(const nn::Graph& graph);

// Writes atomically; provenance should say technique, config, data and tool version.
void save_model(const std::string& path, const nn::Graph& graph,
                const nlohmann::json& provenance = nlohmann::json::object());

// Throws FormatError for a file that is not a valid shrink model (naming what is wrong).
LoadedModel load_model(const std::string& path);

// True when a safetensors file carries a shrink graph.
bool is_native_model(const std::string& path);

}  // namespace shrink::io
