// GGUF reader: header, metadata, tensor infos and data, each validated before it is trusted.
#include <algorithm>
#include <cstring>
#include <set>

#include "io/byte_cursor.h"
#include "shrink/core/parallel.h"
#include "shrink/io/gguf.h"
#include "shrink/kernels/registry.h"

namespace shrink {
namespace {

using io::ByteCursor;

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

// The fewest bytes one element of a type can occupy, to bound counts before allocating.
uint64_t min_encoded_bytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::u8: case GgufValueType::i8: case GgufValueType::boolean: return 1;
    case GgufValueType::u16: case GgufValueType::i16: return 2;
    case GgufValueType::u32: case GgufValueType::i32: case GgufValueType::f32: return 4;
    case GgufValueType::u64: case GgufValueType::i64: case GgufValueType::f64: return 8;
    case GgufValueType::string: return 8;  // its length
    case GgufValueType::array: return 12;  // element type + count
  }
  return 1;
}

GgufValueType read_value_type(ByteCursor& cursor, const char* what) {
  const uint32_t raw = cursor.read<uint32_t>(what);
  if (raw > uint32_t(GgufValueType::f64)) cursor.fail("unknown metadata value type " + std::to_string(raw));
  return GgufValueType(raw);
}

GgufValue read_value(ByteCursor& cursor, GgufValueType type, int depth) {
  GgufValue value;
  value.type = type;
  switch (type) {
    case GgufValueType::u8: value.integer = cursor.read<uint8_t>("a u8 value"); break;
    case GgufValueType::i8: value.integer = cursor.read<int8_t>("an i8 value"); break;
    case GgufValueType::u16: value.integer = cursor.read<uint16_t>("a u16 value"); break;
    case GgufValueType::i16: value.integer = cursor.read<int16_t>("an i16 value"); break;
    case GgufValueType::u32: value.integer = cursor.read<uint32_t>("a u32 value"); break;
    case GgufValueType::i32: value.integer = cursor.read<int32_t>("an i32 value"); break;
    case GgufValueType::u64: value.integer = int64_t(cursor.read<uint64_t>("a u64 value")); break;
    case GgufValueType::i64: value.integer = cursor.read<int64_t>("an i64 value"); break;
    case GgufValueType::f32: value.real = cursor.read<float>("an f32 value"); break;
    case GgufValueType::f64: value.real = cursor.read<double>("an f64 value"); break;
    case GgufValueType::boolean: {
      const uint8_t b = cursor.read<uint8_t>("a bool value");
      if (b > 1) cursor.fail("bool value " + std::to_string(b) + " is neither 0 nor 1");
      value.integer = b;
      break;
    }
    case GgufValueType::string: value.text = cursor.read_string("a string value"); break;
    case GgufValueType::array: {
      if (depth >= kMaxArrayDepth) cursor.fail("arrays nested deeper than " + std::to_string(kMaxArrayDepth));
      value.element_type = read_value_type(cursor, "an array's element type");
      const uint64_t count = cursor.read<uint64_t>("an array's length");
      if (count > cursor.remaining() / min_encoded_bytes(value.element_type))
        cursor.fail("array of " + std::to_string(count) + " elements cannot fit in the " +
                    std::to_string(cursor.remaining()) + " bytes left");
      value.elements.reserve(size_t(count));
      for (uint64_t i = 0; i < count; ++i)
        value.elements.push_back(read_value(cursor, value.element_type, depth + 1));
      break;
    }
  }
  return value;
}

GgufTensorInfo read_tensor_info(ByteCursor& cursor) {
  GgufTensorInfo info;
  info.name = cursor.read_string("a tensor name");
  const std::string where = "tensor '" + info.name + "'";
  const uint32_t n_dims = cursor.read<uint32_t>("a tensor's dimension count");
  if (n_dims == 0 || n_dims > kMaxDims)
    cursor.fail(where + " has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
  std::vector<int64_t> dims;
  for (uint32_t i = 0; i < n_dims; ++i) {
    const uint64_t d = cursor.read<uint64_t>("a tensor dimension");
    if (d > uint64_t(INT64_MAX)) cursor.fail(where + " has a dimension that does not fit int64");
    info.ne.push_back(d);
    dims.insert(dims.begin(), int64_t(d));
  }
  const uint32_t type_id = cursor.read<uint32_t>("a tensor type");
  const auto type = ggml_type_info(type_id);
  if (!type) cursor.fail(where + " has unknown ggml type " + std::to_string(type_id));
  info.type = *type;
  info.offset = cursor.read<uint64_t>("a tensor offset");
  if (!checked_numel(dims, info.numel)) cursor.fail(where + " has too many elements");
  info.shape = Shape(std::move(dims));
  if (info.ne[0] % type->block_size != 0)
    cursor.fail(where + ": row length " + std::to_string(info.ne[0]) + " is not a multiple of " +
                std::string(type->name) + "'s block of " + std::to_string(type->block_size));
  if (__builtin_mul_overflow(uint64_t(info.numel) / type->block_size, uint64_t(type->block_bytes),
                             &info.bytes))
    cursor.fail(where + " is too large");
  return info;
}

[[noreturn]] void bad(const std::string& source, const std::string& problem) {
  throw FormatError(problem, source, "the file is truncated or corrupt; fetch or export it again");
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) { return parse(map_file(path)); }

GgufFile GgufFile::parse(std::shared_ptr<const ByteSource> source) {
  GgufFile file;
  const std::string& name = source->name();
  ByteCursor cursor(source->bytes(), name);
  if (cursor.read<uint32_t>("the magic number") != kMagic) bad(name, "not a GGUF file (bad magic)");
  file.version_ = cursor.read<uint32_t>("the version");
  if (file.version_ == 1)
    throw UnsupportedError("GGUF version 1 (32-bit counts) is not supported", name,
                           "convert the file with a current llama.cpp");
  if (file.version_ != 2 && file.version_ != 3)
    bad(name, "unknown GGUF version " + std::to_string(file.version_));
  const uint64_t tensor_count = cursor.read<uint64_t>("the tensor count");
  const uint64_t kv_count = cursor.read<uint64_t>("the metadata count");
  if (kv_count > cursor.remaining() / 13)  // key length + value type + one byte
    bad(name, "metadata count " + std::to_string(kv_count) + " cannot fit in the file");
  std::set<std::string> keys;
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = cursor.read_string("a metadata key");
    if (!keys.insert(key).second) cursor.fail("duplicate metadata key '" + key + "'");
    const GgufValueType type = read_value_type(cursor, "a metadata value type");
    file.metadata_.emplace_back(std::move(key), read_value(cursor, type, 0));
  }
  if (const GgufValue* alignment = file.find("general.alignment")) {
    const auto value = alignment->as_uint();
    if (!value || *value == 0 || (*value & (*value - 1)) != 0 || *value > (1u << 30))
      bad(name, "general.alignment must be a power of two, found " + alignment->display());
    file.alignment_ = *value;
  }
  if (tensor_count > cursor.remaining() / 32)  // the smallest tensor info takes 32 bytes
    bad(name, "tensor count " + std::to_string(tensor_count) + " cannot fit in the file");
  std::set<std::string> names;
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo info = read_tensor_info(cursor);
    if (!names.insert(info.name).second) cursor.fail("duplicate tensor name '" + info.name + "'");
    file.tensors_.push_back(std::move(info));
  }
  const uint64_t end_of_infos = cursor.position();
  file.data_offset_ = (end_of_infos + file.alignment_ - 1) / file.alignment_ * file.alignment_;
  const uint64_t data_bytes = file.data_offset_ <= source->size() ? source->size() - file.data_offset_ : 0;
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& info : file.tensors_) {
    if (info.offset % file.alignment_ != 0)
      bad(name, "tensor '" + info.name + "' offset " + std::to_string(info.offset) +
                    " is not aligned to " + std::to_string(file.alignment_));
    if (info.offset > data_bytes || info.bytes > data_bytes - info.offset)
      bad(name, "tensor '" + info.name + "' (" + std::to_string(info.bytes) + " bytes at data offset " +
                    std::to_string(info.offset) + ") runs past the end of the file (" +
                    std::to_string(data_bytes) + " data bytes)");
    if (info.bytes > 0) by_offset.push_back(&info);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->offset < by_offset[i - 1]->offset + by_offset[i - 1]->bytes)
      bad(name, "tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name + "' overlap");
  file.source_ = std::move(source);
  return file;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& [k, v] : metadata_)
    if (k == key) return &v;
  return nullptr;
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* value = find(key);
  if (!value || value->type != GgufValueType::string) return std::nullopt;
  return value->text;
}

std::optional<uint64_t> GgufFile::get_uint(std::string_view key) const {
  const GgufValue* value = find(key);
  return value ? value->as_uint() : std::nullopt;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  for (const auto& info : tensors_)
    if (info.name == name) return &info;
  return nullptr;
}

std::span<const std::byte> GgufFile::tensor_bytes(const GgufTensorInfo& info) const {
  return source_->bytes().subspan(data_offset_ + info.offset, info.bytes);
}

namespace {
std::optional<DType> plain_dtype(GgmlType type) {
  switch (type) {
    case GgmlType::f32: return DType::f32;
    case GgmlType::f16: return DType::f16;
    case GgmlType::bf16: return DType::bf16;
    case GgmlType::f64: return DType::f64;
    case GgmlType::i8: return DType::i8;
    case GgmlType::i16: return DType::i16;
    case GgmlType::i32: return DType::i32;
    case GgmlType::i64: return DType::i64;
    default: return std::nullopt;
  }
}
}  // namespace

Tensor GgufFile::view(const GgufTensorInfo& info) const {
  const auto dtype = plain_dtype(info.type.type);
  if (!dtype)
    throw UnsupportedError("tensor '" + info.name + "' is block-quantized (" +
                               std::string(info.type.name) + "); it has no plain view",
                           source_->name(), "use to_f32() to dequantize it");
  return Tensor::map(source_, data_offset_ + info.offset, info.shape, *dtype);
}

bool GgufFile::can_dequantize(const GgufTensorInfo& info) const {
  return plain_dtype(info.type.type) || dequantize_kernel(info.type.type);
}

Tensor GgufFile::to_f32(const GgufTensorInfo& info) const {
  const GgmlType type = info.type.type;
  if (type == GgmlType::f32) {
    Tensor values = view(info);
    return values.writable() ? values : values.clone();  // view() already copies misaligned data
  }
  Tensor out = Tensor::empty(info.shape, DType::f32);
  float* dst = out.mutable_data<float>();
  const std::byte* src = tensor_bytes(info).data();
  const KernelTable& table = kernels();
  const int64_t block = info.type.block_size, block_bytes = info.type.block_bytes;
  const int64_t blocks = info.numel / block;
  if (type == GgmlType::f16 || type == GgmlType::bf16) {
    const ConvertToF32Fn convert = type == GgmlType::f16 ? table.convert_f16_to_f32 : table.convert_bf16_to_f32;
    std::vector<uint16_t> aligned_copy;  // general.alignment may be 1: never read u16 unaligned
    const uint16_t* halves = reinterpret_cast<const uint16_t*>(src);
    if (reinterpret_cast<uintptr_t>(src) % alignof(uint16_t) != 0) {
      aligned_copy.resize(size_t(info.numel));
      std::memcpy(aligned_copy.data(), src, info.bytes);
      halves = aligned_copy.data();
    }
    parallel_for(0, info.numel, 1 << 16,
                 [&](int64_t lo, int64_t hi) { convert(halves + lo, dst + lo, hi - lo); });
    return out;
  }
  if (plain_dtype(type)) return view(info).to(DType::f32);
  const DequantizeFn dequantize = dequantize_kernel(type);
  if (!dequantize)
    throw UnsupportedError("dequantizing " + std::string(info.type.name) + " is not supported yet",
                           source_->name() + ": tensor '" + info.name + "'");
  parallel_for(0, blocks, 1024, [&](int64_t lo, int64_t hi) {
    dequantize(src + lo * block_bytes, dst + lo * block, (hi - lo) * block);
  });
  return out;
}

}  // namespace shrink
