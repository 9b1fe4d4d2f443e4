// Sizes and names of the element types.
#include "shrink/core/dtype.h"

#include <array>

namespace shrink {
namespace {
struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
  bool is_float;
};
constexpr std::array<DTypeInfo, 13> kDTypes = {{
    {DType::f32, "f32", 4, true},   {DType::f16, "f16", 2, true},   {DType::bf16, "bf16", 2, true},
    {DType::f64, "f64", 8, true},   {DType::i8, "i8", 1, false},    {DType::u8, "u8", 1, false},
    {DType::i16, "i16", 2, false},  {DType::u16, "u16", 2, false},  {DType::i32, "i32", 4, false},
    {DType::u32, "u32", 4, false},  {DType::i64, "i64", 8, false},  {DType::u64, "u64", 8, false},
    {DType::boolean, "bool", 1, false},
}};
const DTypeInfo& info(DType dtype) { return kDTypes.at(size_t(dtype)); }
}  // namespace

size_t dtype_size(DType dtype) { return info(dtype).size; }
std::string_view dtype_name(DType dtype) { return info(dtype).name; }
bool dtype_is_float(DType dtype) { return info(dtype).is_float; }
std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& entry : kDTypes)
    if (entry.name == name) return entry.dtype;
  return std::nullopt;
}

}  // namespace shrink
