// Shape (row-major dimensions, outermost first) and element strides.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

namespace shrink {

// Dimensions (or strides) held inline: a tensor's shape and strides are copied with every view
// and result, and as heap vectors they were most of the allocations of a small op (about 7 of the
// 9 a 576-wide RMSNorm/SiLU/Mul/Add node made in the graph executor). Rank is at most kMaxRank;
// more is a UsageError (the readers check first and refuse such files with their own error).
inline constexpr int kMaxRank = 8;

class Dims {
 public:
  using value_type = int64_t;
  using const_iterator = const int64_t*;
  using iterator = int64_t*;

  Dims() = default;
  Dims(std::initializer_list<int64_t> values) { assign(values.begin(), values.size()); }
  explicit Dims(std::span<const int64_t> values) { assign(values.data(), values.size()); }
  explicit Dims(size_t count, int64_t value = 0);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const int64_t* data() const { return values_; }
  int64_t* data() { return values_; }
  const int64_t* begin() const { return values_; }
  const int64_t* end() const { return values_ + size_; }
  int64_t* begin() { return values_; }
  int64_t* end() { return values_ + size_; }
  int64_t operator[](size_t i) const { return values_[i]; }
  int64_t& operator[](size_t i) { return values_[i]; }
  const int64_t& at(size_t i) const;  // std::out_of_range past the end
  int64_t& at(size_t i);
  void erase(size_t i);  // removes entry i, shifting the rest down
  std::vector<int64_t> to_vector() const { return {begin(), end()}; }
  bool operator==(const Dims& other) const { return std::equal(begin(), end(), other.begin(), other.end()); }
  bool operator==(const std::vector<int64_t>& other) const { return std::equal(begin(), end(), other.begin(), other.end()); }

 private:
  void assign(const int64_t* values, size_t count);
  void set_size(size_t count);  // UsageError past kMaxRank

  int64_t values_[kMaxRank] = {};
  uint32_t size_ = 0;
};

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::span<const int64_t> dims) : dims_(dims) {}  // a std::vector too
  explicit Shape(const Dims& dims) : dims_(dims) {}

  int rank() const { return int(dims_.size()); }
  int64_t operator[](int axis) const { return dims_.at(size_t(axis)); }
  int64_t& operator[](int axis) { return dims_.at(size_t(axis)); }
  const Dims& dims() const { return dims_; }
  // Number of elements; throws UsageError on negative dimensions or overflow of int64.
  int64_t numel() const;
  std::string to_string() const;  // "[576, 1536]"
  bool operator==(const Shape&) const = default;

 private:
  Dims dims_;
};

// Product of dims with overflow checking; nullopt-free variant for readers: false on overflow.
bool checked_numel(std::span<const int64_t> dims, int64_t& numel);
// Strides (in elements) of a contiguous row-major tensor of this shape.
Dims contiguous_strides(const Shape& shape);
// Where element i of a contiguous NCHW tensor of shape s sits in its channels-last (NHWC) twin.
inline int64_t nhwc_index(const Shape& s, int64_t i) {
  const int64_t w = s[3], h = s[2], c = s[1];
  const int64_t x = i % w, y = i / w % h, ch = i / (w * h) % c, n = i / (w * h * c);
  return ((n * h + y) * w + x) * c + ch;
}

}  // namespace shrink
