// Shape arithmetic with overflow checks.
#include "shrink/core/shape.h"

#include "shrink/core/error.h"

namespace shrink {

Shape::Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
Shape::Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

bool checked_numel(const std::vector<int64_t>& dims, int64_t& numel) {
  int64_t product = 1;
  for (int64_t d : dims) {
    if (d < 0 || __builtin_mul_overflow(product, d, &product)) return false;
  }
  numel = product;
  return true;
}

int64_t Shape::numel() const {
  int64_t n = 0;
  if (!checked_numel(dims_, n))
    throw UsageError("shape " + to_string() + " has a negative dimension or too many elements");
  return n;
}

std::string Shape::to_string() const {
  std::string text = "[";
  for (size_t i = 0; i < dims_.size(); ++i) text += (i ? ", " : "") + std::to_string(dims_[i]);
  return text + "]";
}

std::vector<int64_t> contiguous_strides(const Shape& shape) {
  std::vector<int64_t> strides(size_t(shape.rank()));
  int64_t stride = 1;
  bool overflow = false;
  for (int axis = shape.rank() - 1; axis >= 0; --axis) {
    strides[size_t(axis)] = overflow ? 0 : stride;
    overflow = overflow || __builtin_mul_overflow(stride, shape[axis], &stride);
  }
  // A shape with a zero dimension holds nothing, whatever its other dimensions (found by fuzzing
  // an IDX header 0 x 3758096383 x ...): its strides are never used to address memory.
  if (overflow && shape.numel() != 0) throw UsageError("shape " + shape.to_string() + " has too many elements");
  return strides;
}

}  // namespace shrink
