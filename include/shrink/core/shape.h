// Shape (row-major dimensions, outermost first) and element strides.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace shrink {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(std::vector<int64_t> dims);

  int rank() const { return int(dims_.size()); }
  int64_t operator[](int axis) const { return dims_.at(size_t(axis)); }
  int64_t& operator[](int axis) { return dims_.at(size_t(axis)); }
  const std::vector<int64_t>& dims() const { return dims_; }
  // Number of elements; throws UsageError on negative dimensions or overflow of int64.
  int64_t numel() const;
  std::string to_string() const;  // "[576, 1536]"
  bool operator==(const Shape&) const = default;

 private:
  std::vector<int64_t> dims_;
};

// Product of dims with overflow checking; nullopt-free variant for readers: false on overflow.
bool checked_numel(const std::vector<int64_t>& dims, int64_t& numel);
// Strides (in elements) of a contiguous row-major tensor of this shape.
std::vector<int64_t> contiguous_strides(const Shape& shape);
// Where element i of a contiguous NCHW tensor of shape s sits in its channels-last (NHWC) twin.
inline int64_t nhwc_index(const Shape& s, int64_t i) {
  const int64_t w = s[3], h = s[2], c = s[1];
  const int64_t x = i % w, y = i / w % h, ch = i / (w * h) % c, n = i / (w * h * c);
  return ((n * h + y) * w + x) * c + ch;
}

}  // namespace shrink
