// Shape arithmetic with overflow checks.
#include "shrink/core/shape.h"

#include "shrink/core/error.h"

#include <stdexcept>

namespace shrink {

void Dims::set_size(size_t count) {
  if (count > size_t(kMaxRank))
    throw UsageError("a tensor of rank " + std::to_string(count) + " (at most " + std::to_string(kMaxRank) + " supported)");
  size_ = uint32_t(count);
}

void Dims::assign(const int64_t* values, size_t count) {
  set_size(count);
  std::copy(values, values + count, values_);
}

Dims::Dims(size_t count, int64_t value) {
  set_size(count);
  std::fill(values_, values_ + count, value);
}

const int64_t& Dims::at(size_t i) const {
  if (i >= size_) throw std::out_of_range("dimension " + std::to_string(i) + " of " + std::to_string(size_));
  return values_[i];
}

int64_t& Dims::at(size_t i) {
  if (i >= size_) throw std::out_of_range("dimension " + std::to_string(i) + " of " + std::to_string(size_));
  return values_[i];
}

void Dims::erase(size_t i) {
  at(i);
  std::copy(values_ + i + 1, values_ + size_, values_ + i);
  --size_;
}

bool checked_numel(std::span<const int64_t> dims, int64_t& numel) {
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

Dims contiguous_strides(const Shape& shape) {
  Dims strides(size_t(shape.rank()));
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
