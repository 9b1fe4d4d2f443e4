// xoshiro256** (Blackman & Vigna), seeded with splitmix64; Box-Muller for normals.
#include "shrink/core/rng.h"

#include <cmath>

namespace shrink {
namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& word : state_) word = splitmix64(seed);
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

float Rng::uniform() { return float(next_u64() >> 40) * 0x1.0p-24f; }

float Rng::uniform(float low, float high) { return low + (high - low) * uniform(); }

float Rng::normal(float mean, float stddev) {
  if (has_spare_) {
    has_spare_ = false;
    return mean + stddev * spare_;
  }
  const double u1 = (double(next_u64() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
  const double u2 = double(next_u64() >> 11) * 0x1.0p-53;
  const double radius = std::sqrt(-2.0 * std::log(u1));
  spare_ = float(radius * std::sin(2.0 * M_PI * u2));
  has_spare_ = true;
  return mean + stddev * float(radius * std::cos(2.0 * M_PI * u2));
}

uint64_t Rng::below(uint64_t bound) {
  if (bound <= 1) return 0;
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;  // reject the uneven tail
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % bound;
}

}  // namespace shrink
