// Reading an ONNX ModelProto (see onnx_reader.h). Field numbers are onnx.proto's.
#include "io/onnx_reader.h"

#include <fmt/format.h>

#include <limits>

#include "io/protobuf_cursor.h"
#include "shrink/core/half.h"

namespace shrink::io {
namespace {

constexpr int kMaxGraphDepth = 32;
constexpr int32_t kFloat = 1, kFloat16 = 10;  // TensorProto.DataType

// A TensorProto: the float ones become f32 tensors (others are shape arithmetic; skipped).
void read_tensor(ProtobufCursor in, std::string name, OnnxModel& model) {
  std::vector<int64_t> dims;
  int32_t type = 0;
  std::span<const std::byte> raw;
  std::vector<float> floats;        // float_data: f32 values, or f16 bit patterns widened
  std::vector<int32_t> int32s;      // int32_data: where float16 values are kept when not raw
  bool external = false;
  while (!in.done()) {
    auto [field, wire] = in.next_field();
    if (field == 1 && wire == WireType::varint) {
      dims.push_back(in.int64("a tensor dimension"));
    } else if (field == 1 && wire == WireType::bytes) {  // packed dims
      ProtobufCursor packed = in.message("tensor dimensions");
      while (!packed.done()) dims.push_back(packed.int64("a tensor dimension"));
    } else if (field == 2 && wire == WireType::varint) {
      type = int32_t(in.varint("a tensor's data type"));
    } else if (field == 4 && wire == WireType::bytes) {  // packed float_data
      auto bytes = in.bytes("float_data");
      if (bytes.size() % 4) in.fail("float_data is not a whole number of floats");
      const size_t start = floats.size();
      floats.resize(start + bytes.size() / 4);
      if (!bytes.empty()) std::memcpy(floats.data() + start, bytes.data(), bytes.size());  // (null when empty)
    } else if (field == 4 && wire == WireType::fixed32) {
      floats.push_back(in.fixed<float>("float_data"));
    } else if (field == 5 && wire == WireType::bytes) {  // packed int32_data
      ProtobufCursor packed = in.message("int32_data");
      while (!packed.done()) int32s.push_back(int32_t(packed.varint("int32_data")));
    } else if (field == 5 && wire == WireType::varint) {
      int32s.push_back(int32_t(in.varint("int32_data")));
    } else if (field == 8 && wire == WireType::bytes) {
      std::string own = in.string("a tensor's name");
      if (name.empty()) name = std::move(own);
    } else if (field == 9 && wire == WireType::bytes) {
      raw = in.bytes("raw_data");
    } else if (field == 14 && wire == WireType::varint) {
      external = in.varint("data_location") == 1;
    } else if (field == 13 && wire == WireType::bytes) {
      in.bytes("external_data");
      external = true;
    } else {
      in.skip(wire);
    }
  }
  if (type != kFloat && type != kFloat16) return;
  if (external)
    throw UnsupportedError(fmt::format("tensor '{}' is stored in an external file", name), in.source_name(),
                           "shrink reads ONNX files that hold their weights inside");
  int64_t count = 1;
  for (int64_t d : dims) {
    if (d < 0 || (d > 0 && count > (int64_t(1) << 40) / d))
      in.fail(fmt::format("tensor '{}' has an invalid dimension {}", name, d));
    count *= d;
  }
  const Shape shape{std::span<const int64_t>(dims)};
  // The values the file holds must match the shape before anything is allocated for them.
  const size_t width = type == kFloat ? 4 : 2;
  const bool from_raw = !raw.empty() || (floats.empty() && int32s.empty());
  const uint64_t held = from_raw ? raw.size() / width : type == kFloat ? floats.size() : int32s.size();
  if ((from_raw && raw.size() % width) || held != uint64_t(count))
    in.fail(fmt::format("tensor '{}' of shape {} needs {} values, the file holds {}", name, shape.to_string(), count,
                        from_raw ? fmt::format("{} bytes of raw data", raw.size()) : std::to_string(held)));
  if (name.empty()) return;  // ConstantOfShape's fill value, say: nothing to look up by name
  Tensor t = Tensor::uninitialized(shape, DType::f32);
  float* out = t.mutable_data<float>();
  if (from_raw && type == kFloat) {
    if (count) std::memcpy(out, raw.data(), raw.size());
  } else if (from_raw) {
    for (int64_t i = 0; i < count; ++i) {
      uint16_t bits;
      std::memcpy(&bits, raw.data() + 2 * i, 2);
      out[i] = f16_to_f32(bits);
    }
  } else if (type == kFloat) {
    std::copy(floats.begin(), floats.end(), out);
  } else {
    for (int64_t i = 0; i < count; ++i) out[i] = f16_to_f32(uint16_t(int32s[size_t(i)]));
  }
  model.stored_as[name] = type == kFloat ? DType::f32 : DType::f16;
  model.tensors[name] = std::move(t);
}

void read_graph(ProtobufCursor in, OnnxModel& model, int depth, bool main_graph);

// An AttributeProto of a node: a tensor (Constant's value) or a subgraph (If/Loop/Scan bodies).
void read_attribute(ProtobufCursor in, const std::string& node_output, bool constant, OnnxModel& model, int depth) {
  std::string name;
  std::vector<ProtobufCursor> tensors;  // read once the name is known (fields may come in any order)
  while (!in.done()) {
    auto [field, wire] = in.next_field();
    if (field == 1 && wire == WireType::bytes) {
      name = in.string("an attribute's name");
    } else if (field == 5 && wire == WireType::bytes) {
      tensors.push_back(in.message("an attribute's tensor"));
    } else if ((field == 6 || field == 11) && wire == WireType::bytes) {
      read_graph(in.message("a subgraph"), model, depth + 1, false);
    } else {
      in.skip(wire);
    }
  }
  // A Constant's tensor is known by the node's output name (its own name is often empty).
  for (ProtobufCursor& tensor : tensors)
    read_tensor(tensor, constant && name == "value" ? node_output : std::string(), model);
}

void read_node(ProtobufCursor in, OnnxModel& model, int depth) {
  std::vector<ProtobufCursor> attributes;  // read once the op type and output are known
  std::string op, first_output;
  while (!in.done()) {
    auto [field, wire] = in.next_field();
    if (field == 2 && wire == WireType::bytes) {
      std::string output = in.string("a node's output");
      if (first_output.empty()) first_output = std::move(output);
    } else if (field == 4 && wire == WireType::bytes) {
      op = in.string("a node's op type");
    } else if (field == 5 && wire == WireType::bytes) {
      attributes.push_back(in.message("a node's attribute"));
    } else {
      in.skip(wire);
    }
  }
  if (op.empty()) in.fail("a node without an op type");
  ++model.op_counts[op];
  for (ProtobufCursor& attribute : attributes)
    read_attribute(attribute, first_output, op == "Constant", model, depth);
}

// A ValueInfoProto's name (the graph's inputs and outputs).
std::string value_name(ProtobufCursor in) {
  std::string name;
  while (!in.done()) {
    auto [field, wire] = in.next_field();
    if (field == 1 && wire == WireType::bytes) name = in.string("a value's name");
    else in.skip(wire);
  }
  return name;
}

void read_graph(ProtobufCursor in, OnnxModel& model, int depth, bool main_graph) {
  if (depth > kMaxGraphDepth) in.fail(fmt::format("graphs nested more than {} deep", kMaxGraphDepth));
  while (!in.done()) {
    auto [field, wire] = in.next_field();
    if (field == 1 && wire == WireType::bytes) {
      read_node(in.message("a node"), model, depth);
    } else if (field == 5 && wire == WireType::bytes) {
      read_tensor(in.message("an initializer"), std::string(), model);
    } else if ((field == 11 || field == 12) && wire == WireType::bytes) {
      std::string name = value_name(in.message("a graph input or output"));
      if (main_graph) (field == 11 ? model.inputs : model.outputs).push_back(std::move(name));
    } else {
      in.skip(wire);
    }
  }
}

// An OperatorSetIdProto: the default domain's version.
void read_opset(ProtobufCursor in, OnnxModel& model) {
  std::string domain;
  int64_t version = 0;
  while (!in.done()) {
    auto [field, wire] = in.next_field();
    if (field == 1 && wire == WireType::bytes) domain = in.string("an opset's domain");
    else if (field == 2 && wire == WireType::varint) version = in.int64("an opset's version");
    else in.skip(wire);
  }
  if (domain.empty() || domain == "ai.onnx") model.opset = version;
}

}  // namespace

OnnxModel read_onnx(const ByteSource& source) {
  ProtobufCursor in(source.bytes(), source.name());
  OnnxModel model;
  bool has_graph = false;
  std::string producer_version;
  while (!in.done()) {
    auto [field, wire] = in.next_field();
    if (field == 1 && wire == WireType::varint) {
      model.ir_version = in.int64("ir_version");
    } else if (field == 2 && wire == WireType::bytes) {
      model.producer = in.string("producer_name");
    } else if (field == 3 && wire == WireType::bytes) {
      producer_version = in.string("producer_version");
    } else if (field == 7 && wire == WireType::bytes) {
      if (has_graph) in.fail("a second main graph");
      read_graph(in.message("the graph"), model, 0, true);
      has_graph = true;
    } else if (field == 8 && wire == WireType::bytes) {
      read_opset(in.message("an opset import"), model);
    } else {
      in.skip(wire);
    }
  }
  if (!has_graph || model.ir_version <= 0)
    throw FormatError("not an ONNX model (no ir_version or no graph)", source.name());
  if (!producer_version.empty()) model.producer += " " + producer_version;
  return model;
}

}  // namespace shrink::io
