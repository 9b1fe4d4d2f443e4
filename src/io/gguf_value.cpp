// GgufValue accessors and rendering.
#include <cmath>
#include <cstdio>

#include "shrink/io/gguf.h"

namespace shrink {

std::string_view gguf_value_type_name(GgufValueType type) {
  static constexpr std::string_view kNames[] = {"u8",  "i8",  "u16",  "i16",    "u32", "i32", "f32",
                                                "bool", "string", "array", "u64", "i64", "f64"};
  const auto index = uint32_t(type);
  return index < std::size(kNames) ? kNames[index] : "?";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::u8: case GgufValueType::i8: case GgufValueType::u16:
    case GgufValueType::i16: case GgufValueType::u32: case GgufValueType::i32:
    case GgufValueType::u64: case GgufValueType::i64: return true;
    default: return false;
  }
}

std::optional<uint64_t> GgufValue::as_uint() const {
  if (!is_integer()) return std::nullopt;
  if (type == GgufValueType::u64) return uint64_t(integer);
  if (integer < 0) return std::nullopt;
  return uint64_t(integer);
}

std::optional<int64_t> GgufValue::as_int() const {
  if (!is_integer() || (type == GgufValueType::u64 && integer < 0)) return std::nullopt;
  return integer;
}

std::optional<double> GgufValue::as_float() const {
  if (type == GgufValueType::f32 || type == GgufValueType::f64) return real;
  if (type == GgufValueType::u64) return double(uint64_t(integer));
  if (is_integer()) return double(integer);
  return std::nullopt;
}

std::string GgufValue::display(size_t max_elements) const {
  switch (type) {
    case GgufValueType::string: return text;
    case GgufValueType::boolean: return integer ? "true" : "false";
    case GgufValueType::f32:
    case GgufValueType::f64: {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.7g", real);
      return buffer;
    }
    case GgufValueType::u64: return std::to_string(uint64_t(integer));
    case GgufValueType::array: {
      std::string out = "[";
      for (size_t i = 0; i < elements.size() && i < max_elements; ++i) {
        out += i ? ", " : "";
        out += elements[i].type == GgufValueType::string ? "\"" + elements[i].text + "\""
                                                         : elements[i].display(max_elements);
      }
      if (elements.size() > max_elements) out += ", ...";
      return out + "] (" + std::to_string(elements.size()) + " " +
             std::string(gguf_value_type_name(element_type)) + ")";
    }
    default: return std::to_string(integer);
  }
}

}  // namespace shrink
