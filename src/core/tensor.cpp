// Storage (owned or borrowed) and Tensor views, copies and element-type conversion.
#include <malloc.h>
#include "shrink/core/tensor.h"

#include "core/block_cache.h"
#include "core/memory_budget.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <cstring>

#include "shrink/core/half.h"

namespace shrink {

// ---- Storage ----

namespace {
// Training allocates and frees the same large activations every step; glibc would hand blocks
// above its mmap threshold back to the kernel each time (page faults and zeroing on every step,
// ~20% of a CNN step measured here). Keep them in the heap instead.
void keep_large_blocks_in_heap() {
  static const bool done = [] {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)done;
}
}  // namespace

namespace {
// Storage and its shared_ptr control block in one allocation (make_shared needs a public constructor).
struct SharedStorage final : Storage {};
}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t bytes, bool zero) {
  keep_large_blocks_in_heap();
  std::shared_ptr<Storage> storage = std::make_shared<SharedStorage>();
  if (bytes > 0) {
    memory_budget::reserve(bytes);  // throws when the machine cannot hold them
    storage->data_ = block_cache::take(bytes);
    if (!storage->data_) {
      memory_budget::release(bytes);
      throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
    }
    if (zero) std::memset(storage->data_, 0, (bytes + 63) / 64 * 64);  // the bytes asked for, to the cache line
  }
  storage->size_ = bytes;
  storage->owned_ = true;
  return storage;
}

std::shared_ptr<Storage> Storage::borrow(std::shared_ptr<const ByteSource> source, size_t offset,
                                         size_t bytes) {
  const auto span = source->bytes();
  if (offset > span.size() || bytes > span.size() - offset)
    throw FormatError("range [" + std::to_string(offset) + ", +" + std::to_string(bytes) +
                          ") lies outside the " + std::to_string(span.size()) + "-byte source",
                      source->name());
  std::shared_ptr<Storage> storage = std::make_shared<SharedStorage>();
  storage->data_ = const_cast<std::byte*>(span.data()) + offset;  // never written: owned_ false
  storage->size_ = bytes;
  storage->source_ = std::move(source);
  return storage;
}

Storage::~Storage() {
  if (!owned_ || !data_) return;
  block_cache::give_back(data_, size_);
  memory_budget::release(size_);
}

std::byte* Storage::mutable_data() {
  if (!owned_)
    throw UsageError("tensor data is read-only (borrowed from a mapped file)", {},
                     "call clone() for a writable copy");
  return data_;
}

// ---- Tensor ----

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  const size_t bytes = size_t(shape.numel()) * dtype_size(dtype);
  return from_storage(Storage::allocate(bytes), 0, shape, dtype);
}

Tensor Tensor::uninitialized(const Shape& shape, DType dtype) {
  const size_t bytes = size_t(shape.numel()) * dtype_size(dtype);
  return from_storage(Storage::allocate(bytes, false), 0, shape, dtype);
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, size_t byte_offset,
                            const Shape& shape, DType dtype) {
  const size_t bytes = size_t(shape.numel()) * dtype_size(dtype);
  if (byte_offset > storage->size() || bytes > storage->size() - byte_offset)
    throw UsageError("tensor of shape " + shape.to_string() + " does not fit its storage");
  Tensor tensor;
  tensor.storage_ = std::move(storage);
  tensor.byte_offset_ = byte_offset;
  tensor.dtype_ = dtype;
  tensor.shape_ = shape;
  tensor.strides_ = contiguous_strides(shape);
  return tensor;
}

Tensor Tensor::map(std::shared_ptr<const ByteSource> source, size_t byte_offset, const Shape& shape,
                   DType dtype) {
  const size_t bytes = size_t(shape.numel()) * dtype_size(dtype);
  Tensor view = from_storage(Storage::borrow(std::move(source), byte_offset, bytes), 0, shape, dtype);
  const auto address = reinterpret_cast<uintptr_t>(view.raw_data());
  return address % dtype_size(dtype) == 0 ? view : view.clone();
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int axis = rank() - 1; axis >= 0; --axis) {
    if (shape_[axis] != 1 && strides_[size_t(axis)] != expected) return false;
    expected *= shape_[axis];
  }
  return true;
}

void Tensor::check_dtype(DType expected) const {
  if (expected != dtype_)
    throw UsageError("tensor holds " + std::string(dtype_name(dtype_)) + ", accessed as " +
                     std::string(dtype_name(expected)));
}

int Tensor::normalize_axis(int axis) const {
  const int normalized = axis < 0 ? axis + rank() : axis;
  if (normalized < 0 || normalized >= rank())
    throw UsageError("axis " + std::to_string(axis) + " out of range for a tensor of rank " +
                     std::to_string(rank()));
  return normalized;
}

Tensor Tensor::slice(int axis, int64_t start, int64_t end) const {
  axis = normalize_axis(axis);
  if (start < 0 || end < start || end > shape_[axis])
    throw UsageError("slice [" + std::to_string(start) + ", " + std::to_string(end) +
                     ") out of range for axis " + std::to_string(axis) + " of shape " +
                     shape_.to_string());
  Tensor view = *this;
  view.byte_offset_ += size_t(start * strides_[size_t(axis)]) * dtype_size(dtype_);
  view.shape_[axis] = end - start;
  return view;
}

Tensor Tensor::select(int axis, int64_t index) const {
  axis = normalize_axis(axis);
  Tensor view = slice(axis, index, index + 1);
  Dims dims = view.shape_.dims();
  dims.erase(size_t(axis));
  view.shape_ = Shape(dims);
  view.strides_.erase(size_t(axis));
  return view;
}

Tensor Tensor::transpose(int axis_a, int axis_b) const {
  axis_a = normalize_axis(axis_a);
  axis_b = normalize_axis(axis_b);
  Tensor view = *this;
  std::swap(view.shape_[axis_a], view.shape_[axis_b]);
  std::swap(view.strides_[size_t(axis_a)], view.strides_[size_t(axis_b)]);
  return view;
}

Tensor Tensor::reshape(const Shape& shape) const {
  if (!is_contiguous()) return contiguous().reshape(shape);
  Dims dims = shape.dims();
  int inferred = -1;
  int64_t known = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1 && inferred < 0) {
      inferred = int(i);
    } else {
      known *= dims[i];
    }
  }
  if (inferred >= 0 && known > 0 && numel() % known == 0) dims[size_t(inferred)] = numel() / known;
  const Shape target(dims);
  int64_t target_numel = 0;
  if (!checked_numel(target.dims(), target_numel) || target_numel != numel())
    throw UsageError("cannot reshape " + shape_.to_string() + " into " + shape.to_string());
  Tensor view = *this;
  view.shape_ = target;
  view.strides_ = contiguous_strides(target);
  return view;
}

namespace {

// Visits every element of a strided tensor in row-major order, giving its byte offset.
template <class Visit>
void for_each_offset(const Shape& shape, const Dims& strides, size_t element_size,
                     Visit&& visit) {
  const int rank = shape.rank();
  if (shape.numel() == 0) return;
  std::vector<int64_t> index(size_t(rank), 0);
  int64_t offset = 0;
  for (;;) {
    visit(offset * int64_t(element_size));
    int axis = rank - 1;
    for (; axis >= 0; --axis) {
      offset += strides[size_t(axis)];
      if (++index[size_t(axis)] < shape[axis]) break;
      offset -= strides[size_t(axis)] * shape[axis];
      index[size_t(axis)] = 0;
    }
    if (axis < 0) return;
  }
}

double read_element(const std::byte* p, DType dtype) {
  auto load = [p]<class T>(T) { T v; std::memcpy(&v, p, sizeof v); return v; };
  switch (dtype) {
    case DType::f32: return load(float{});
    case DType::f16: return f16_to_f32(load(uint16_t{}));
    case DType::bf16: return bf16_to_f32(load(uint16_t{}));
    case DType::f64: return load(double{});
    case DType::i8: return load(int8_t{});
    case DType::u8: return load(uint8_t{});
    case DType::i16: return load(int16_t{});
    case DType::u16: return load(uint16_t{});
    case DType::i32: return load(int32_t{});
    case DType::u32: return load(uint32_t{});
    case DType::i64: return double(load(int64_t{}));
    case DType::u64: return double(load(uint64_t{}));
    case DType::boolean: return load(uint8_t{}) != 0;
  }
  return 0;
}

// Float to integer saturates to the type's range (nan becomes 0), as casting out of range is
// undefined behaviour in C++.
template <class T> T saturate(double value) {
  if (std::isnan(value)) return T(0);
  if (value <= double(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
  if (value >= double(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return T(value);
}

void write_element(std::byte* p, DType dtype, double value) {
  auto store = [p]<class T>(T v) { std::memcpy(p, &v, sizeof v); };
  switch (dtype) {
    case DType::f32: return store(float(value));
    case DType::f16: return store(f32_to_f16(float(value)));
    case DType::bf16: return store(f32_to_bf16(float(value)));
    case DType::f64: return store(value);
    case DType::i8: return store(saturate<int8_t>(value));
    case DType::u8: return store(saturate<uint8_t>(value));
    case DType::i16: return store(saturate<int16_t>(value));
    case DType::u16: return store(saturate<uint16_t>(value));
    case DType::i32: return store(saturate<int32_t>(value));
    case DType::u32: return store(saturate<uint32_t>(value));
    case DType::i64: return store(saturate<int64_t>(value));
    case DType::u64: return store(saturate<uint64_t>(value));
    case DType::boolean: return store(uint8_t(value != 0));
  }
}

}  // namespace

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor copy = empty(shape_, dtype_);
  const size_t element = dtype_size(dtype_);
  const std::byte* source = storage_->data() + byte_offset_;
  std::byte* target = static_cast<std::byte*>(copy.mutable_raw_data());
  if (is_contiguous()) {
    if (nbytes() > 0) std::memcpy(target, source, nbytes());  // an empty tensor may have no storage
    return copy;
  }
  for_each_offset(shape_, strides_, element, [&](int64_t offset) {
    std::memcpy(target, source + offset, element);
    target += element;
  });
  return copy;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return clone();
  Tensor result = empty(shape_, dtype);
  const std::byte* source = storage_->data() + byte_offset_;
  std::byte* target = static_cast<std::byte*>(result.mutable_raw_data());
  const size_t target_size = dtype_size(dtype);
  for_each_offset(shape_, strides_, dtype_size(dtype_), [&](int64_t offset) {
    write_element(target, dtype, read_element(source + offset, dtype_));
    target += target_size;
  });
  return result;
}

}  // namespace shrink
