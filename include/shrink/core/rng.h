// Seeded random numbers: xoshiro256** seeded through splitmix64. Same seed, same sequence, on
// every machine (no std:: distributions, whose output differs between standard libraries).
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace shrink {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next_u64();
  uint32_t next_u32() { return uint32_t(next_u64() >> 32); }
  float uniform();                       // [0, 1)
  float uniform(float low, float high);  // [low, high)
  float normal(float mean = 0.f, float stddev = 1.f);
  uint64_t below(uint64_t bound);  // uniform integer in [0, bound), unbiased
  template <class T> void shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }

 private:
  uint64_t state_[4];
  bool has_spare_ = false;
  float spare_ = 0.f;
};

}  // namespace shrink
