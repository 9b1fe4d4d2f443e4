// QuantScheme ranges and validation, and the block-size helpers.
#include "shrink/quant/scheme.h"

#include <fmt/format.h>

namespace shrink {

int32_t QuantScheme::quant_min() const {
  const int b = reduce_range ? bits - 1 : bits;
  if (!is_signed) return 0;
  const bool narrow = narrow_range || (convention == QParamsConvention::ggml && mapping == QuantMapping::symmetric);
  return -(int32_t(1) << (b - 1)) + (narrow ? 1 : 0);
}

int32_t QuantScheme::quant_max() const {
  const int b = reduce_range ? bits - 1 : bits;
  return is_signed ? (int32_t(1) << (b - 1)) - 1 : (int32_t(1) << b) - 1;
}

void QuantScheme::validate() const {
  if (bits < 2 || bits > 8)
    throw UsageError("quantization to " + std::to_string(bits) + " bits is not supported", {}, "choose 2 to 8 bits");
  if (reduce_range && bits < 3) throw UsageError("reduce_range needs at least 3 bits");
  if (convention == QParamsConvention::gptq && is_signed)
    throw UsageError("the GPTQ/AWQ convention stores unsigned values", {}, "set is_signed = false");
  if (convention == QParamsConvention::ggml && mapping == QuantMapping::affine && is_signed)
    throw UsageError("ggml's affine (Q4_1-style) convention stores unsigned values", {}, "set is_signed = false");
}

std::string QuantScheme::describe() const {
  static constexpr const char* kConventions[] = {"pytorch", "gptq", "ggml"};
  return fmt::format("{}int{} {} ({}){}", is_signed ? "" : "u", bits,
                     mapping == QuantMapping::symmetric ? "symmetric" : "affine", kConventions[int(convention)],
                     reduce_range ? ", reduced range" : "");
}

std::vector<int64_t> per_tensor_block(const Shape& shape) { return shape.dims().to_vector(); }

std::vector<int64_t> per_channel_block(const Shape& shape, int axis) {
  if (axis < 0) axis += shape.rank();
  if (axis < 0 || axis >= shape.rank())
    throw UsageError("channel axis " + std::to_string(axis) + " out of range for shape " + shape.to_string());
  std::vector<int64_t> block = shape.dims().to_vector();
  block[size_t(axis)] = 1;
  return block;
}

std::vector<int64_t> per_group_block(const Shape& shape, int64_t group_size, int axis) {
  if (axis < 0) axis += shape.rank();
  if (axis < 0 || axis >= shape.rank())
    throw UsageError("group axis out of range for shape " + shape.to_string());
  if (group_size <= 0 || shape[axis] % group_size != 0)
    throw UsageError(fmt::format("group size {} does not divide dimension {} of shape {}", group_size, shape[axis],
                                 shape.to_string()), {}, "choose a group size that divides the row length");
  std::vector<int64_t> block(size_t(shape.rank()), 1);
  block[size_t(axis)] = group_size;
  return block;
}

}  // namespace shrink
