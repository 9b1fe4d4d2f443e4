// The largest of a row of floats, vectorized: the compare-and-select chain of std::max over a row
// stays scalar (GCC keeps its order), sixteen lane-wise maxima do not.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace shrink {

// max of x[0 .. n), -inf for n = 0; NaNs never win (as with std::max from the left).
inline float max_value(const float* x, int64_t n) {
  constexpr int64_t kLanes = 16;
  float lane[kLanes];
  std::fill(lane, lane + kLanes, -INFINITY);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lane[l] = lane[l] < x[j + l] ? x[j + l] : lane[l];
  float top = -INFINITY;
  for (; j < n; ++j) top = top < x[j] ? x[j] : top;
  for (float m : lane) top = top < m ? m : top;
  return top;
}

}  // namespace shrink
