// safetensors reader (validating, zero-copy) and atomic writer.
#include "shrink/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "io/byte_cursor.h"
#include "io/json_checked.h"
#include "shrink/core/atomic_file.h"

namespace shrink {
namespace {

using nlohmann::json;

// The safetensors project caps the header at 100 MB; so do we, before allocating anything.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeName {
  DType dtype;
  std::string_view name;
};
constexpr DTypeName kDTypeNames[] = {
    {DType::f32, "F32"}, {DType::f16, "F16"}, {DType::bf16, "BF16"}, {DType::f64, "F64"},
    {DType::i8, "I8"},   {DType::u8, "U8"},   {DType::i16, "I16"},   {DType::u16, "U16"},
    {DType::i32, "I32"}, {DType::u32, "U32"}, {DType::i64, "I64"},   {DType::u64, "U64"},
    {DType::boolean, "BOOL"},
};

[[noreturn]] void bad(const std::string& source, const std::string& problem) {
  throw FormatError(problem, source, "the file is not valid safetensors; export or fetch it again");
}

uint64_t non_negative_integer(const json& value, const std::string& source, const std::string& what) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) return uint64_t(value.get<int64_t>());
  bad(source, what + " must be a non-negative integer, found " + value.dump().substr(0, 40));
}

SafetensorsEntry parse_entry(const std::string& name, const json& info, uint64_t data_bytes,
                             const std::string& source) {
  const std::string where = "tensor '" + name + "'";
  if (!info.is_object()) bad(source, where + ": entry is not a JSON object");
  const auto dtype_it = info.find("dtype");
  const auto shape_it = info.find("shape");
  const auto offsets_it = info.find("data_offsets");
  if (dtype_it == info.end() || !dtype_it->is_string() || shape_it == info.end() ||
      !shape_it->is_array() || offsets_it == info.end() || !offsets_it->is_array() ||
      offsets_it->size() != 2)
    bad(source, where + ": needs \"dtype\" (string), \"shape\" (array) and \"data_offsets\" ([begin, end])");
  SafetensorsEntry entry;
  entry.name = name;
  const std::string dtype_name = dtype_it->get<std::string>();
  const auto known = std::find_if(std::begin(kDTypeNames), std::end(kDTypeNames),
                                  [&](const DTypeName& d) { return d.name == dtype_name; });
  if (known == std::end(kDTypeNames))
    throw UnsupportedError(where + " has dtype '" + dtype_name + "', which shrink does not read",
                           source, "supported: F32 F16 BF16 F64 I8 U8 I16 U16 I32 U32 I64 U64 BOOL");
  entry.dtype = known->dtype;
  std::vector<int64_t> dims;
  for (const json& dim : *shape_it) {
    const uint64_t d = non_negative_integer(dim, source, where + " shape entry");
    if (d > uint64_t(INT64_MAX)) bad(source, where + ": dimension too large");
    dims.push_back(int64_t(d));
  }
  if (dims.size() > size_t(kMaxRank))
    throw UnsupportedError(where + " has " + std::to_string(dims.size()) + " dimensions", source,
                           "shrink's tensors have at most " + std::to_string(kMaxRank));
  int64_t numel = 0;
  uint64_t bytes = 0;
  if (!checked_numel(dims, numel) ||
      __builtin_mul_overflow(uint64_t(numel), dtype_size(entry.dtype), &bytes))
    bad(source, where + ": shape has too many elements");
  entry.shape = Shape(std::move(dims));
  entry.begin = non_negative_integer((*offsets_it)[0], source, where + " data offset");
  entry.end = non_negative_integer((*offsets_it)[1], source, where + " data offset");
  if (entry.end < entry.begin || entry.end > data_bytes)
    bad(source, where + ": data offsets [" + std::to_string(entry.begin) + ", " +
                    std::to_string(entry.end) + ") lie outside the " + std::to_string(data_bytes) +
                    "-byte data section");
  if (entry.end - entry.begin != bytes)
    bad(source, where + ": shape " + entry.shape.to_string() + " of " + dtype_name + " needs " +
                    std::to_string(bytes) + " bytes but its data offsets span " +
                    std::to_string(entry.end - entry.begin));
  return entry;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) { return parse(map_file(path)); }

SafetensorsFile SafetensorsFile::parse(std::shared_ptr<const ByteSource> source) {
  SafetensorsFile file;
  const std::string& name = source->name();
  io::ByteCursor cursor(source->bytes(), name);
  const uint64_t header_bytes = cursor.read<uint64_t>("the header length");
  if (header_bytes > kMaxHeaderBytes)
    bad(name, "header length " + std::to_string(header_bytes) + " exceeds the 100 MB limit");
  if (header_bytes > cursor.remaining())
    bad(name, "header length " + std::to_string(header_bytes) + " runs past the end of the " +
                  std::to_string(source->size()) + "-byte file");
  const auto* text = reinterpret_cast<const char*>(source->bytes().data() + 8);
  const json header = json::parse(text, text + header_bytes, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) bad(name, "header is not valid JSON");
  if (!header.is_object()) bad(name, "header is not a JSON object");
  const uint64_t data_bytes = source->size() - 8 - header_bytes;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) bad(name, "__metadata__ is not a JSON object");
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string()) bad(name, "__metadata__ value of '" + meta_key + "' is not a string");
        file.metadata_.emplace_back(meta_key, meta_value.get<std::string>());
      }
      continue;
    }
    file.entries_.push_back(parse_entry(key, value, data_bytes, name));
  }
  std::sort(file.entries_.begin(), file.entries_.end(),
            [](const auto& a, const auto& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  const SafetensorsEntry* furthest = nullptr;  // the non-empty tensor reaching furthest so far
  for (const auto& entry : file.entries_) {
    if (entry.end == entry.begin) continue;
    if (furthest && entry.begin < furthest->end)
      bad(name, "tensors '" + furthest->name + "' and '" + entry.name + "' overlap");
    if (!furthest || entry.end > furthest->end) furthest = &entry;
  }
  file.header_bytes_ = header_bytes;
  file.source_ = std::move(source);
  return file;
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view name) const {
  for (const auto& entry : entries_)
    if (entry.name == name) return &entry;
  return nullptr;
}

Tensor SafetensorsFile::tensor(std::string_view name) const {
  const SafetensorsEntry* entry = find(name);
  if (!entry)
    throw UsageError("no tensor named '" + std::string(name) + "'", source_->name(),
                     "run 'shrink inspect' to list the tensors");
  return Tensor::map(source_, 8 + header_bytes_ + entry->begin, entry->shape, entry->dtype);
}

std::string_view safetensors_dtype_name(DType dtype) {
  for (const auto& known : kDTypeNames)
    if (known.dtype == dtype) return known.name;
  return "?";
}

void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const StringPairs& metadata) {
  json header = json::object();
  if (!metadata.empty()) {
    json meta = json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__" || !names.insert(name).second)
      throw UsageError("tensor name '" + name + "' is empty, reserved or repeated", path);
    if (!tensor.defined()) throw UsageError("tensor '" + name + "' has no data", path);
    const uint64_t bytes = tensor.nbytes();
    header[name] = {{"dtype", safetensors_dtype_name(tensor.dtype())},
                    {"shape", tensor.shape().dims().to_vector()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = io::json_text(header, "a tensor name or metadata value", path);
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  AtomicFileWriter writer(path);
  const uint64_t header_bytes = text.size();
  writer.write(&header_bytes, 8);
  writer.write(text.data(), text.size());
  for (const auto& [name, tensor] : tensors) {
    const Tensor contiguous = tensor.contiguous();
    writer.write(contiguous.raw_data(), contiguous.nbytes());
  }
  writer.commit();
}

}  // namespace shrink
