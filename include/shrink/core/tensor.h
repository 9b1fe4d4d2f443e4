// Tensor: a typed, shaped, strided view into reference-counted storage. Storage is owned
// (64-byte aligned heap memory) or borrowed from a ByteSource such as a mapped file (zero-copy,
// read-only). Views (slice, transpose, reshape of contiguous data) share storage.
#pragma once
#include <cstddef>
#include <memory>

#include "shrink/core/dtype.h"
#include "shrink/core/error.h"
#include "shrink/core/mapped_file.h"
#include "shrink/core/shape.h"

namespace shrink {

class Storage {
 public:
  static std::shared_ptr<Storage> allocate(size_t bytes, bool zero = true);  // 64-byte aligned
  static std::shared_ptr<Storage> borrow(std::shared_ptr<const ByteSource> source, size_t offset,
                                         size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  const std::byte* data() const { return data_; }
  std::byte* mutable_data();  // throws UsageError for read-only (borrowed) storage
  size_t size() const { return size_; }
  bool writable() const { return owned_; }

 protected:
  Storage() = default;  // made through allocate() and borrow()

 private:
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  bool owned_ = false;
  std::shared_ptr<const ByteSource> source_;  // keeps a mapping alive
};

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype);  // zero-filled
  static Tensor zeros(const Shape& shape, DType dtype) { return empty(shape, dtype); }
  // Contents unspecified: for results that are written in full before anyone reads them.
  static Tensor uninitialized(const Shape& shape, DType dtype);
  // A contiguous tensor over existing storage; checks that it fits.
  static Tensor from_storage(std::shared_ptr<Storage> storage, size_t byte_offset,
                             const Shape& shape, DType dtype);

  // A tensor over bytes of a source (a mapped file): zero-copy and read-only when the data is
  // aligned for its type, otherwise an aligned, owned copy (files may place data anywhere).
  static Tensor map(std::shared_ptr<const ByteSource> source, size_t byte_offset, const Shape& shape,
                    DType dtype);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Dims& strides() const { return strides_; }
  int rank() const { return shape_.rank(); }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  bool writable() const { return storage_ && storage_->writable(); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  const void* raw_data() const { return storage_->data() + byte_offset_; }
  void* mutable_raw_data() { return storage_->mutable_data() + byte_offset_; }
  template <class T> const T* data() const {
    check_dtype(DTypeOf<T>::value);
    return static_cast<const T*>(raw_data());
  }
  template <class T> T* mutable_data() {
    check_dtype(DTypeOf<T>::value);
    return static_cast<T*>(mutable_raw_data());
  }

  // Views sharing storage.
  Tensor slice(int axis, int64_t start, int64_t end) const;  // [start, end) along axis
  Tensor select(int axis, int64_t index) const;              // drops the axis
  Tensor transpose(int axis_a, int axis_b) const;
  Tensor reshape(const Shape& shape) const;  // contiguous tensors only; one dim may be -1

  // Copies.
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a fresh, writable, contiguous copy
  Tensor to(DType dtype) const;  // converts element type (through f64 for exactness)

 private:
  void check_dtype(DType expected) const;
  int normalize_axis(int axis) const;

  std::shared_ptr<Storage> storage_;
  size_t byte_offset_ = 0;
  DType dtype_ = DType::f32;
  Shape shape_;
  Dims strides_;
};

}  // namespace shrink
