// The native model file: graph JSON in safetensors metadata, parameters as tensors.
#include "shrink/io/native_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "io/file_kind.h"
#include "io/json_checked.h"
#include "shrink/io/onnx_import.h"
#include "shrink/io/safetensors.h"

namespace shrink::io {
namespace {

using nlohmann::json;

const std::string* find_metadata(const SafetensorsFile& file, const std::string& key) {
  for (const auto& [k, v] : file.metadata())
    if (k == key) return &v;
  return nullptr;
}

// The provenance fields shrink reads back (inspect, eval, the compression commands), checked for
// their types once here: a file whose provenance says {"config": {"arch": 5}} ended `inspect` with
// nlohmann's type_error (exit 3) before this check.
void check_provenance(const json& provenance, const std::string& path) {
  using Test = bool (json::*)() const noexcept;
  const auto expect = [&](const json& object, const std::string& where, const char* key, Test test, const char* type) {
    const auto it = object.find(key);
    if (it != object.end() && !((*it).*test)())
      throw FormatError(fmt::format("the provenance's '{}{}' is not {}", where, key, type), path);
  };
  expect(provenance, "", "config", &json::is_object, "an object");
  expect(provenance, "", "result", &json::is_object, "an object");
  expect(provenance, "", "calibration", &json::is_object, "an object");
  expect(provenance, "", "language_model", &json::is_object, "an object");
  expect(provenance, "", "technique", &json::is_string, "text");
  expect(provenance, "", "tool", &json::is_string, "text");
  expect(provenance, "", "epochs_completed", &json::is_number_integer, "an integer");
  if (const auto config = provenance.find("config"); config != provenance.end()) {
    expect(*config, "config.", "arch", &json::is_string, "text");
    expect(*config, "config.", "data", &json::is_string, "text");
    expect(*config, "config.", "context", &json::is_number_integer, "an integer");
  }
  if (const auto result = provenance.find("result"); result != provenance.end()) {
    expect(*result, "result.", "metric", &json::is_string, "text");
    expect(*result, "result.", "value", &json::is_number, "a number");
    expect(*result, "result.", "loss", &json::is_number, "a number");
  }
  if (const auto calibration = provenance.find("calibration"); calibration != provenance.end())
    expect(*calibration, "calibration.", "batches", &json::is_number_integer, "an integer");
}

json parse_json(const std::string& text, const std::string& where) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw FormatError(std::string("metadata is not valid JSON: ") + e.what(), where);
  }
}

Shape shape_from_json(const json& j, const std::string& where) {
  if (!j.is_array()) throw FormatError("a shape must be an array of integers", where);
  std::vector<int64_t> dims;
  for (const json& d : j) {
    if (!d.is_number_integer() || d.get<int64_t>() < -1)
      throw FormatError("a shape must hold integers >= -1", where);
    dims.push_back(d.get<int64_t>());
  }
  if (dims.size() > size_t(kMaxRank))
    throw FormatError("a shape of rank " + std::to_string(dims.size()) + " (at most " + std::to_string(kMaxRank) + ")", where);
  return Shape(dims);
}

Tensor read_sparse(const SafetensorsFile& file, const std::string& name, const Shape& shape);

const json& field(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) throw FormatError(fmt::format("missing '{}'", key), where);
  return j.at(key);
}
std::string string_field(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_string()) throw FormatError(fmt::format("'{}' must be a string", key), where);
  return v.get<std::string>();
}

nn::Graph graph_from_json(const json& g, const SafetensorsFile& file) {
  const std::string where = file.source_name();
  nn::Graph graph;
  std::map<std::string, int> values;
  std::map<std::string, Tensor> loaded;  // parameters by full name, for tied ones
  for (const json& in : field(g, "inputs", where)) {
    std::string name = string_field(in, "name", where);
    auto dtype = dtype_from_name(string_field(in, "dtype", where));
    if (!dtype) throw FormatError("unknown dtype of input '" + name + "'", where);
    values[name] = graph.add_input(name, shape_from_json(field(in, "shape", where), where), *dtype);
  }
  for (const json& n : field(g, "nodes", where)) {
    nn::Node node;
    node.name = string_field(n, "name", where);
    node.kind = string_field(n, "kind", where);
    node.attrs = n.value("attrs", json::object());
    std::string node_where = where + ": node " + node.name;
    for (const json& in : field(n, "inputs", node_where)) {
      if (!in.is_string() || !values.count(in.get<std::string>()))
        throw FormatError("reads an unknown value", node_where);
      node.inputs.push_back(values[in.get<std::string>()]);
    }
    for (const json& p : n.value("params", json::array())) {
      std::string local = string_field(p, "name", node_where);
      std::string full = node.name + "." + local;
      Tensor value;
      if (p.value("storage", "dense") == "tied") {
        auto it = loaded.find(string_field(p, "tied_to", node_where));
        if (it == loaded.end()) throw FormatError("a tied parameter names no earlier parameter", node_where);
        value = it->second;
      } else if (p.value("storage", "dense") == "bitmask") {
        value = read_sparse(file, full, shape_from_json(field(p, "shape", node_where), node_where));
      } else {
        if (!file.find(full)) throw FormatError("tensor '" + full + "' is missing", where);
        value = file.tensor(full).clone();
      }
      loaded[full] = value;
      node.params.push_back({local, value, {}, p.value("trainable", true)});
    }
    const json& outputs = field(n, "outputs", node_where);
    std::vector<int> ids;
    try {
      ids = graph.add_node(std::move(node));
    } catch (const UsageError& e) {
      throw FormatError(e.problem(), node_where, "the file's graph does not check out");
    }
    if (!outputs.is_array() || outputs.size() != ids.size())
      throw FormatError("output count disagrees with the node kind", node_where);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!outputs[i].is_string()) throw FormatError("output names must be strings", node_where);
      graph.set_value_name(ids[i], outputs[i].get<std::string>());
      values[outputs[i].get<std::string>()] = ids[i];
    }
  }
  for (const json& out : field(g, "outputs", where)) {
    if (!out.is_string() || !values.count(out.get<std::string>()))
      throw FormatError("graph output names an unknown value", where);
    graph.mark_output(values[out.get<std::string>()]);
  }
  try {
    graph.validate();
  } catch (const UsageError& e) {
    throw FormatError(e.problem(), where + ": " + e.location());
  }
  return graph;
}

// Weights with at least this fraction of zeros are stored as a bitmask plus their nonzero values
// (1 bit per weight + 32 bits per nonzero: smaller than dense above ~3% zeros).
constexpr double kSparseStorageThreshold = 0.1;

bool store_sparse(const Tensor& t) {
  if (t.dtype() != DType::f32 || t.numel() < 64) return false;
  Tensor c = t.contiguous();
  int64_t zeros = 0;
  for (int64_t i = 0; i < c.numel(); ++i) zeros += c.data<float>()[i] == 0.f;
  return double(zeros) >= kSparseStorageThreshold * double(c.numel());
}

// Tensors "<name>.mask" (bit i of the weight, least significant bit first) and "<name>.nonzero".
void append_sparse(const std::string& name, const Tensor& t, std::vector<NamedTensor>& out) {
  Tensor c = t.contiguous();
  int64_t n = c.numel(), nonzero = 0;
  Tensor mask = Tensor::empty(Shape{(n + 7) / 8}, DType::u8);
  for (int64_t i = 0; i < n; ++i)
    if (c.data<float>()[i] != 0.f) {
      mask.mutable_data<uint8_t>()[i / 8] |= uint8_t(1u << (i % 8));
      ++nonzero;
    }
  Tensor values = Tensor::empty(Shape{nonzero}, DType::f32);
  for (int64_t i = 0, k = 0; i < n; ++i)
    if (c.data<float>()[i] != 0.f) values.mutable_data<float>()[k++] = c.data<float>()[i];
  out.push_back({name + ".mask", mask});
  out.push_back({name + ".nonzero", values});
}

Tensor read_sparse(const SafetensorsFile& file, const std::string& name, const Shape& shape) {
  for (const char* part : {".mask", ".nonzero"})
    if (!file.find(name + part)) throw FormatError("tensor '" + name + part + "' is missing", file.source_name());
  Tensor mask = file.tensor(name + ".mask"), values = file.tensor(name + ".nonzero");
  int64_t n = 0;
  if (std::any_of(shape.dims().begin(), shape.dims().end(), [](int64_t d) { return d < 0; }) ||
      !checked_numel(shape.dims(), n))
    throw FormatError("a sparse weight needs a concrete shape", name);
  if (mask.dtype() != DType::u8 || mask.numel() != (n + 7) / 8 || values.dtype() != DType::f32)
    throw FormatError(fmt::format("the sparse storage of '{}' does not fit its shape {}", name, shape.to_string()),
                      file.source_name());
  Tensor dense = Tensor::empty(shape, DType::f32);
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i)
    if (mask.data<uint8_t>()[i / 8] >> (i % 8) & 1) {
      if (k >= values.numel()) throw FormatError("more mask bits than stored values", name);
      dense.mutable_data<float>()[i] = values.data<float>()[k++];
    }
  if (k != values.numel()) throw FormatError("fewer mask bits than stored values", name);
  return dense;
}

// Parameters that are the very same tensor as an earlier one (tied embeddings): full name ->
// the earlier full name. They are stored once and shared again on loading.
std::map<std::string, std::string> tied_params(const nn::Graph& graph) {
  std::map<std::string, std::string> tied;
  std::vector<std::pair<std::string, const Tensor*>> seen;
  for (const auto& [name, p] : graph.named_params()) {
    const Tensor& t = p->value;
    bool found = false;
    for (const auto& [earlier, u] : seen)
      if (u->raw_data() == t.raw_data() && u->shape() == t.shape() && u->dtype() == t.dtype() &&
          u->strides() == t.strides()) {
        tied[name] = earlier;
        found = true;
        break;
      }
    if (!found) seen.emplace_back(name, &t);
  }
  return tied;
}

}  // namespace

json graph_to_json(const nn::Graph& graph) {
  const std::map<std::string, std::string> tied = tied_params(graph);
  json g;
  auto value_name = [&](int id) { return graph.values()[size_t(id)].name; };
  g["inputs"] = json::array();
  for (int id : graph.inputs()) {
    const nn::Value& v = graph.values()[size_t(id)];
    g["inputs"].push_back({{"name", v.name},
                           {"shape", v.info.shape.dims().to_vector()},
                           {"dtype", std::string(dtype_name(v.info.dtype))}});
  }
  g["nodes"] = json::array();
  for (const nn::Node& node : graph.nodes()) {
    json n = {{"name", node.name}, {"kind", node.kind}, {"attrs", node.attrs}};
    n["inputs"] = json::array();
    n["outputs"] = json::array();
    n["params"] = json::array();
    for (int id : node.inputs) n["inputs"].push_back(value_name(id));
    for (int id : node.outputs) n["outputs"].push_back(value_name(id));
    for (const nn::Param& p : node.params) {
      json entry = {{"name", p.name}, {"trainable", p.trainable}};
      if (auto it = tied.find(node.name + "." + p.name); it != tied.end()) {
        entry["storage"] = "tied";
        entry["tied_to"] = it->second;
      } else if (store_sparse(p.value)) {
        entry["storage"] = "bitmask";
        entry["shape"] = p.value.shape().dims().to_vector();
      }
      n["params"].push_back(entry);
    }
    g["nodes"].push_back(n);
  }
  g["outputs"] = json::array();
  for (int id : graph.outputs()) g["outputs"].push_back(value_name(id));
  return g;
}

void save_model(const std::string& path, const nn::Graph& graph, const json& provenance) {
  std::vector<NamedTensor> tensors;
  const std::map<std::string, std::string> tied = tied_params(graph);
  for (const auto& [name, p] : graph.named_params()) {
    if (tied.count(name)) continue;
    if (store_sparse(p->value)) append_sparse(name, p->value, tensors);
    else tensors.push_back({name, p->value});
  }
  StringPairs metadata = {{"shrink.format", kNativeFormatTag},
                          {"shrink.graph", json_text(graph_to_json(graph), "the graph", path)},
                          {"shrink.provenance", json_text(provenance, "the provenance", path)}};
  save_safetensors(path, tensors, metadata);
}

LoadedModel load_model(const std::string& path) {
  // A GGUF, or any file not safetensors, had failed as "header length 14064895815 exceeds the
  // 100 MB limit (the file is not valid safetensors)".
  switch (sniff_model_file(path)) {
    case ModelFileKind::gguf:
      throw UsageError("a GGUF language model, and this command reads shrink models", path,
                       "language models go to generate, eval --perplexity, quantize --method rtn|gptq|awq|dynamic, "
                       "prune, factorize and export");
    case ModelFileKind::unknown:
      if (std::ifstream(path, std::ios::binary))
        throw FormatError("not a shrink model (neither safetensors, GGUF nor ONNX)", path);
      break;  // unreadable: the reader below says why
    case ModelFileKind::onnx: return import_onnx(path);
    case ModelFileKind::safetensors: break;
  }
  SafetensorsFile file = SafetensorsFile::open(path);
  const std::string* tag = find_metadata(file, "shrink.format");
  if (!tag)
    throw FormatError("not a shrink model (no shrink.format in the metadata)", path,
                      "shrink reads its own models, GGUF language models and Hugging Face model folders "
                      "(config.json beside model.safetensors)");
  if (*tag != kNativeFormatTag)
    throw UnsupportedError("model format '" + *tag + "' is not " + kNativeFormatTag, path);
  const std::string* graph_text = find_metadata(file, "shrink.graph");
  if (!graph_text) throw FormatError("the metadata holds no graph", path);
  LoadedModel model;
  try {
    model.graph = graph_from_json(parse_json(*graph_text, path), file);
  } catch (const json::exception& e) {
    throw FormatError(std::string("the graph metadata is malformed: ") + e.what(), path);
  }
  if (const std::string* p = find_metadata(file, "shrink.provenance"))
    model.provenance = parse_json(*p, path);
  if (!model.provenance.is_object()) model.provenance = json::object();
  check_provenance(model.provenance, path);
  return model;
}

bool is_native_model(const std::string& path) {
  try {
    return find_metadata(SafetensorsFile::open(path), "shrink.format") != nullptr;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace shrink::io
