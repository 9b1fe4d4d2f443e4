// Builds ModelSummary from GGUF files, safetensors files and Hugging Face folders.
#include <fmt/format.h>
#include "shrink/io/native_model.h"
#include "shrink/io/inspect.h"

#include <sys/stat.h>

#include <cstring>
#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "io/file_kind.h"
#include "io/onnx_reader.h"
#include "shrink/core/mapped_file.h"
#include "shrink/io/onnx_import.h"
#include "shrink/core/error.h"
#include "shrink/io/gguf.h"
#include "shrink/io/safetensors.h"

namespace shrink {
namespace {

using nlohmann::ordered_json;

bool is_directory(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

std::string parent_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

ordered_json gguf_value_json(const GgufValue& value) {
  switch (value.type) {
    case GgufValueType::string: return value.text;
    case GgufValueType::boolean: return value.integer != 0;
    case GgufValueType::f32: case GgufValueType::f64: return value.real;
    case GgufValueType::u64: return uint64_t(value.integer);
    case GgufValueType::array: {
      ordered_json out = {{"type", "array"},
                          {"element_type", gguf_value_type_name(value.element_type)},
                          {"length", value.elements.size()}};
      ordered_json head = ordered_json::array();
      for (size_t i = 0; i < value.elements.size() && i < 8; ++i) head.push_back(gguf_value_json(value.elements[i]));
      out["first"] = std::move(head);
      return out;
    }
    default: return value.integer;
  }
}

void summarize_gguf(const std::string& path, ModelSummary& summary) {
  const GgufFile file = GgufFile::open(path);
  summary.format = "gguf";
  summary.format_version = std::to_string(file.version());
  summary.file_bytes = file.file_bytes();
  for (const auto& [key, value] : file.metadata()) summary.metadata[key] = gguf_value_json(value);
  const std::string arch = file.get_string("general.architecture").value_or("");
  auto fact = [&](const std::string& label, const std::string& key) {
    if (const GgufValue* value = file.find(key)) summary.architecture.emplace_back(label, value->display());
  };
  fact("architecture", "general.architecture");
  fact("name", "general.name");
  fact("layers", arch + ".block_count");
  fact("hidden size", arch + ".embedding_length");
  fact("feed-forward size", arch + ".feed_forward_length");
  fact("attention heads", arch + ".attention.head_count");
  fact("key/value heads", arch + ".attention.head_count_kv");
  fact("context length", arch + ".context_length");
  fact("rope theta", arch + ".rope.freq_base");
  fact("norm epsilon", arch + ".attention.layer_norm_rms_epsilon");
  fact("tokenizer", "tokenizer.ggml.model");
  if (const GgufValue* tokens = file.find("tokenizer.ggml.tokens"))
    summary.architecture.emplace_back("vocabulary", std::to_string(tokens->elements.size()));
  fact("file type", "general.file_type");
  for (const auto& info : file.tensors())
    summary.tensors.push_back({info.name, std::string(info.type.name), info.shape.dims().to_vector(), info.numel, info.bytes,
                               info.type.type == GgmlType::i8 || info.type.type == GgmlType::i16 ||
                                   info.type.type == GgmlType::i32 || info.type.type == GgmlType::i64});
}

void add_hf_config(const std::string& config_path, ModelSummary& summary) {
  std::ifstream stream(config_path);
  const auto config = nlohmann::json::parse(stream, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object())
    throw FormatError("config.json is not a JSON object", config_path);
  auto fact = [&](const std::string& label, const char* key) {
    const auto it = config.find(key);
    if (it == config.end() || it->is_null()) return;
    summary.architecture.emplace_back(label, it->is_string() ? it->get<std::string>() : it->dump());
  };
  if (const auto it = config.find("architectures"); it != config.end() && it->is_array() && !it->empty())
    summary.architecture.emplace_back("architecture", it->front().is_string() ? it->front().get<std::string>() : it->dump());
  fact("model type", "model_type");
  fact("layers", "num_hidden_layers");
  fact("hidden size", "hidden_size");
  fact("feed-forward size", "intermediate_size");
  fact("attention heads", "num_attention_heads");
  fact("key/value heads", "num_key_value_heads");
  fact("context length", "max_position_embeddings");
  fact("vocabulary", "vocab_size");
  fact("activation", "hidden_act");
  fact("dtype", "torch_dtype");
}

// Adds one safetensors file's metadata and tensors; returns the tensor names it holds.
std::set<std::string> add_safetensors(const std::string& path, ModelSummary& summary) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  summary.format = "safetensors";
  summary.file_bytes += file.file_bytes();
  for (const auto& [key, value] : file.metadata()) summary.metadata[key] = value;
  std::set<std::string> names;
  for (const auto& entry : file.entries()) {
    summary.tensors.push_back({entry.name, std::string(safetensors_dtype_name(entry.dtype)),
                               entry.shape.dims().to_vector(), entry.shape.numel(), entry.end - entry.begin,
                               !dtype_is_float(entry.dtype)});
    names.insert(entry.name);
  }
  return names;
}

// A model's graph node by node and what its provenance says.
void add_graph(const io::LoadedModel& model, ModelSummary& summary) {
  const nn::Graph& g = model.graph;
  for (const nn::Node& node : g.nodes()) {
    GraphNodeSummary n{node.name, node.kind, {}, g.values()[size_t(node.outputs.at(0))].info.shape.dims().to_vector(), 0};
    for (int id : node.inputs) n.inputs.push_back(g.values()[size_t(id)].name);
    for (const nn::Param& p : node.params)
      if (p.trainable) n.params += p.value.numel();
    summary.graph.push_back(n);
  }
  const nlohmann::json& prov = model.provenance;
  const nlohmann::json config = prov.value("config", nlohmann::json::object());
  if (config.contains("arch")) summary.architecture.emplace_back("architecture", config["arch"].get<std::string>());
  summary.architecture.emplace_back("graph", fmt::format("{} nodes, {} trainable parameters", g.nodes().size(),
                                                         g.parameter_count()));
  if (prov.contains("technique"))
    summary.architecture.emplace_back("made by", fmt::format("{} ({})", prov["technique"].get<std::string>(),
                                                             prov.value("tool", std::string("?"))));
  if (config.contains("data") && config["data"].is_string() && !config["data"].get<std::string>().empty())
    summary.architecture.emplace_back("data", config["data"].get<std::string>());
  if (prov.contains("result") && prov["result"].is_object()) {
    nlohmann::json r = prov["result"];
    const bool measured = !r.value("metric", "").empty() && r.contains("value") && r["value"].is_number();
    if (measured) {
      std::string text = fmt::format("held-out {} {:.4f}, loss {:.4f}", r.value("metric", ""), r["value"].get<double>(),
                                     r.value("loss", 0.0));
      if (r.contains("before") && r["before"].is_number()) text += fmt::format(" ({:.4f} before)", r["before"].get<double>());
      if (prov.contains("epochs_completed")) {
        const int epochs = prov.value("epochs_completed", 0);
        text += fmt::format(" after {} epoch{}", epochs, epochs == 1 ? "" : "s");
      }
      summary.architecture.emplace_back("result", text);
    } else {
      // Files from before 2026-12-03 held -1 and "" where no dataset measured the model.
      for (const char* key : {"metric", "value", "loss", "before", "factored"})
        if (r.contains(key) && (r[key] == -1 || r[key] == -1.0 || r[key] == "")) r.erase(key);
      if (!r.empty()) summary.architecture.emplace_back("result", r.dump());
    }
  }
}

void summarize_safetensors(const std::string& path, ModelSummary& summary) {
  add_safetensors(path, summary);
  if (summary.metadata.contains("shrink.graph")) add_graph(io::load_model(path), summary);
  const std::string config = parent_of(path) + "/config.json";
  if (exists(config)) add_hf_config(config, summary);
}

// An ONNX file: its ops and float tensors (every branch's), and the graph shrink imports it as
// when it is a network shrink knows.
void summarize_onnx(const std::string& path, ModelSummary& summary) {
  const auto source = map_file(path);
  const io::OnnxModel model = io::read_onnx(*source);
  summary.format = "onnx";
  summary.format_version = std::to_string(model.ir_version);  // the IR version; the opset is under "ops"
  summary.architecture.emplace_back("opset", std::to_string(model.opset));
  summary.file_bytes = source->size();
  if (!model.producer.empty()) summary.architecture.emplace_back("producer", model.producer);
  int64_t nodes = 0;
  for (const auto& [op, count] : model.op_counts) {
    summary.metadata["ops"][op] = count;
    nodes += count;
  }
  summary.metadata["inputs"] = model.inputs;
  summary.metadata["outputs"] = model.outputs;
  summary.architecture.emplace_back("ONNX nodes", fmt::format("{} of {} op types (subgraphs included)", nodes,
                                                              model.op_counts.size()));
  for (const auto& [name, tensor] : model.tensors) {
    const DType stored = model.stored_as.at(name);
    summary.tensors.push_back({name, stored == DType::f32 ? "F32" : "F16", tensor.shape().dims().to_vector(),
                               tensor.numel(), uint64_t(tensor.numel()) * dtype_size(stored), false});
  }
  try {
    add_graph(io::import_onnx(model, path), summary);  // the file read once
  } catch (const UnsupportedError&) {
    summary.architecture.emplace_back("shrink imports it", "no: not a network shrink knows (Silero VAD v5)");
  }
}

// A checkpoint split over shards: model.safetensors.index.json maps every tensor to its shard.
void summarize_sharded(const std::string& folder, ModelSummary& summary) {
  const std::string index_path = folder + "/model.safetensors.index.json";
  std::ifstream stream(index_path);
  const auto index = nlohmann::json::parse(stream, nullptr, /*allow_exceptions=*/false);
  const auto map = index.is_object() ? index.find("weight_map") : index.end();
  if (index.is_discarded() || !index.is_object() || map == index.end() || !map->is_object())
    throw FormatError("not a safetensors index (needs a \"weight_map\" object)", index_path);
  std::vector<std::string> shards;
  for (const auto& [tensor, shard] : map->items()) {
    if (!shard.is_string()) throw FormatError("weight_map entry of '" + tensor + "' is not a file name", index_path);
    const std::string name = shard.get<std::string>();
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      throw FormatError("shard name '" + name + "' is not a plain file name in this folder", index_path);
    if (std::find(shards.begin(), shards.end(), name) == shards.end()) shards.push_back(name);
  }
  std::map<std::string, std::set<std::string>> held;  // shard -> tensors it holds
  for (const auto& shard : shards) {
    if (!exists(folder + "/" + shard))
      throw IoError("shard '" + shard + "' listed in the index is missing", index_path, "fetch the whole checkpoint");
    held[shard] = add_safetensors(folder + "/" + shard, summary);
  }
  for (const auto& [tensor, shard] : map->items())
    if (!held[shard.get<std::string>()].count(tensor))
      throw FormatError("tensor '" + tensor + "' is not in its shard '" + shard.get<std::string>() + "'", index_path);
  summary.shards = int(shards.size());
  if (exists(folder + "/config.json")) add_hf_config(folder + "/config.json", summary);
}

}  // namespace

ModelSummary summarize_model(const std::string& path) {
  ModelSummary summary;
  summary.path = path;
  std::string file_path = path;
  if (is_directory(path)) {
    file_path = path + "/model.safetensors";
    if (!exists(file_path) && exists(path + "/model.safetensors.index.json")) {
      summarize_sharded(path, summary);
      file_path.clear();
    } else if (!exists(file_path)) {
      throw UsageError("folder has neither model.safetensors nor model.safetensors.index.json", path,
                       "pass a .gguf or .safetensors file, or a Hugging Face model folder");
    }
  }
  if (!file_path.empty()) {  // empty: a sharded checkpoint, already summarized
    if (!std::ifstream(file_path, std::ios::binary))
      throw IoError(std::string("cannot open: ") + std::strerror(errno), file_path, "check the path and its permissions");
    switch (io::sniff_model_file(file_path)) {
      case io::ModelFileKind::gguf: summarize_gguf(file_path, summary); break;
      case io::ModelFileKind::safetensors: summarize_safetensors(file_path, summary); break;
      case io::ModelFileKind::onnx: summarize_onnx(file_path, summary); break;
      case io::ModelFileKind::unknown:
        throw FormatError("not a GGUF, safetensors or ONNX file", file_path,
                          "shrink inspect reads .gguf, .safetensors, .onnx and Hugging Face model folders");
    }
  }
  for (const auto& tensor : summary.tensors) {
    summary.total_tensor_bytes += tensor.bytes;
    if (tensor.is_buffer) {
      summary.total_buffer_elements += tensor.params;
    } else {
      summary.total_params += tensor.params;
      summary.total_param_bytes += tensor.bytes;
    }
  }
  return summary;
}

ordered_json to_json(const ModelSummary& summary) {
  ordered_json out = {{"path", summary.path},
                      {"format", summary.format},
                      {"file_bytes", summary.file_bytes}};
  if (!summary.format_version.empty()) out["format_version"] = summary.format_version;
  out["shards"] = summary.shards;
  ordered_json architecture = ordered_json::object();
  for (const auto& [key, value] : summary.architecture) architecture[key] = value;
  out["architecture"] = std::move(architecture);
  out["metadata"] = summary.metadata.is_null() ? ordered_json::object() : summary.metadata;
  ordered_json tensors = ordered_json::array();
  for (const auto& t : summary.tensors)
    tensors.push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape},
                       {"elements", t.params}, {"bytes", t.bytes}, {"buffer", t.is_buffer}});
  out["tensors"] = std::move(tensors);
  if (!summary.graph.empty()) {
    ordered_json graph = ordered_json::array();
    for (const auto& n : summary.graph)
      graph.push_back({{"name", n.name}, {"kind", n.kind}, {"inputs", n.inputs}, {"output_shape", n.output_shape},
                       {"params", n.params}});
    out["graph"] = std::move(graph);
  }
  out["totals"] = {{"tensors", summary.tensors.size()},
                   {"params", summary.total_params},
                   {"buffer_elements", summary.total_buffer_elements},
                   {"bytes", summary.total_tensor_bytes},
                   {"bits_per_weight", summary.bits_per_weight()}};
  return out;
}

}  // namespace shrink
