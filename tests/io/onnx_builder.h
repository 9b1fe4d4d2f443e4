// Writing small ONNX files for the reader's tests: the protocol-buffers wire format by hand
// (varints, length-delimited fields), with the ModelProto/GraphProto/NodeProto field numbers of
// onnx.proto. Not a general ONNX writer: only what the tests need.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "shrink/core/half.h"

namespace shrink::testing {

class Proto {
 public:
  Proto& varint(uint32_t field, uint64_t value) {
    key(field, 0);
    put_varint(value);
    return *this;
  }
  Proto& fixed32(uint32_t field, float value) {
    key(field, 5);
    append(&value, 4);
    return *this;
  }
  Proto& bytes(uint32_t field, const void* data, size_t size) {
    key(field, 2);
    put_varint(size);
    append(data, size);
    return *this;
  }
  Proto& string(uint32_t field, const std::string& text) { return bytes(field, text.data(), text.size()); }
  Proto& message(uint32_t field, const Proto& inner) { return bytes(field, inner.out_.data(), inner.out_.size()); }
  const std::vector<std::byte>& data() const { return out_; }

 private:
  void key(uint32_t field, int wire) { put_varint(uint64_t(field) << 3 | uint64_t(wire)); }
  void put_varint(uint64_t v) {
    do {
      out_.push_back(std::byte((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
      v >>= 7;
    } while (v);
  }
  void append(const void* data, size_t size) {
    const auto* p = static_cast<const std::byte*>(data);
    out_.insert(out_.end(), p, p + size);
  }
  std::vector<std::byte> out_;
};

// TensorProto: float32 as raw_data (field 9).
inline Proto float_tensor(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values) {
  Proto t;
  for (int64_t d : dims) t.varint(1, uint64_t(d));
  t.varint(2, 1).string(8, name).bytes(9, values.data(), values.size() * 4);
  return t;
}
// TensorProto: float16 as raw_data, no name (a Constant's value is known by its node's output).
inline Proto half_tensor(const std::vector<int64_t>& dims, const std::vector<float>& values) {
  std::vector<uint16_t> bits;
  for (float v : values) bits.push_back(f32_to_f16(v));
  Proto t;
  for (int64_t d : dims) t.varint(1, uint64_t(d));
  t.varint(2, 10).bytes(9, bits.data(), bits.size() * 2);
  return t;
}
// NodeProto: a Constant whose attribute lists its tensor before its name (any order is valid).
inline Proto constant_node(const std::string& output, const Proto& tensor) {
  Proto attribute;
  attribute.message(5, tensor).string(1, "value").varint(20, 4);
  Proto node;
  node.string(2, output).string(4, "Constant").message(5, attribute);
  return node;
}
inline Proto op_node(const std::string& op, const std::string& input, const std::string& output) {
  Proto node;
  node.string(1, input).string(2, output).string(4, op);
  return node;
}
inline Proto value_info(const std::string& name) { return Proto().string(1, name); }

// ModelProto around a graph: ir_version 8, producer "shrink-test", opset 17.
inline std::vector<std::byte> onnx_model(const Proto& graph) {
  Proto opset;
  opset.string(1, "").varint(2, 17);
  Proto model;
  model.varint(1, 8).string(2, "shrink-test").message(7, graph).message(8, opset);
  return model.data();
}

// A small model touching every path of the reader: a raw f32 initializer, an f32 Constant as
// packed float_data, an If whose branch holds an f16 Constant, an int64 Constant (skipped), Relu.
inline std::vector<std::byte> sample_onnx_model() {
  Proto packed;  // float_data, packed (field 4 as bytes)
  const float values[2] = {0.5f, -2.f};
  packed.varint(1, 2).varint(2, 1).bytes(4, values, sizeof values);
  const int64_t shape_value = 7;
  Proto int64_tensor;
  int64_tensor.varint(2, 7).bytes(9, &shape_value, 8);
  Proto branch;
  branch.string(2, "then").message(1, constant_node("branch.half", half_tensor({3}, {1.f, 0.25f, -3.f})));
  Proto if_attribute;
  if_attribute.string(1, "then_branch").message(6, branch).varint(20, 5);
  Proto if_node;
  if_node.string(1, "cond").string(2, "chosen").string(4, "If").message(5, if_attribute);
  Proto graph;
  graph.string(2, "main")
      .message(5, float_tensor("w", {2, 3}, {1, 2, 3, 4, 5, 6}))
      .message(1, constant_node("c.packed", packed))
      .message(1, constant_node("c.shape", int64_tensor))
      .message(1, if_node)
      .message(1, op_node("Relu", "x", "y"))
      .message(11, value_info("x"))
      .message(12, value_info("y"));
  return onnx_model(graph);
}

}  // namespace shrink::testing
