// GGUF (ggml's model file, versions 2 and 3): a header, typed metadata key/values, tensor infos,
// then aligned tensor data. Reading maps the file; every count, length, dimension and offset is
// validated against the bytes that remain before anything is allocated or trusted.
// Shapes are given row-major (outermost first); GGUF stores them innermost first (ggml's ne).
#pragma once
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shrink/core/tensor.h"
#include "shrink/kernels/ggml_formats.h"

namespace shrink {

enum class GgufValueType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8,
  array = 9, u64 = 10, i64 = 11, f64 = 12,
};
std::string_view gguf_value_type_name(GgufValueType type);

struct GgufValue {
  GgufValueType type = GgufValueType::u8;
  // Scalars: integers in `integer` (unsigned ones reinterpret), floats in `real`, bools as 0/1.
  int64_t integer = 0;
  double real = 0;
  std::string text;
  GgufValueType element_type = GgufValueType::u8;  // arrays
  std::vector<GgufValue> elements;

  bool is_integer() const;
  std::optional<uint64_t> as_uint() const;  // any integer type holding a value >= 0
  std::optional<int64_t> as_int() const;
  std::optional<double> as_float() const;   // integers and floats
  // A readable rendering; arrays show their first `max_elements` elements and their length.
  std::string display(size_t max_elements = 6) const;
};

struct GgufTensorInfo {
  std::string name;
  GgmlTypeInfo type;
  std::vector<uint64_t> ne;  // GGUF order: innermost dimension first
  Shape shape;               // row-major: ne reversed
  int64_t numel = 0;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t bytes = 0;
};

class GgufFile {
 public:
  static GgufFile open(const std::string& path);
  static GgufFile parse(std::shared_ptr<const ByteSource> source);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_bytes() const { return source_->size(); }
  const std::string& source_name() const { return source_->name(); }
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<uint64_t> get_uint(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  std::span<const std::byte> tensor_bytes(const GgufTensorInfo& info) const;
  // Zero-copy view of an unquantized tensor (F32, F16, BF16, F64, I8..I64), copied only when
  // misaligned; UnsupportedError for block formats.
  Tensor view(const GgufTensorInfo& info) const;
  // The tensor as f32, dequantizing block formats with the registered kernels.
  Tensor to_f32(const GgufTensorInfo& info) const;
  bool can_dequantize(const GgufTensorInfo& info) const;

 private:
  std::shared_ptr<const ByteSource> source_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

}  // namespace shrink
