#include "core/block_cache.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace shrink::block_cache {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCaching = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kCaching = false;
#else
constexpr bool kCaching = true;
#endif
#else
constexpr bool kCaching = true;
#endif

// Classes: 64, 128, 192, 256, then four per doubling (320, 384, 448, 512, 640, ...).
constexpr size_t kClasses = 4 + 4 * (std::bit_width(kMaxCachedBytes) - 9);

size_t class_index(size_t size) {  // size: a class size
  if (size <= 256) return size / 64 - 1;
  const int top = std::bit_width(size - 1) - 1;  // size in (2^top, 2^(top+1)]
  const size_t step = size_t(1) << (top - 2);
  return 4 + 4 * size_t(top - 8) + (size - (size_t(1) << top)) / step - 1;
}

struct Cache {
  std::array<std::vector<std::byte*>, kClasses> free_blocks;
  size_t idle_bytes = 0;
  ~Cache() {
    for (auto& blocks : free_blocks)
      for (std::byte* b : blocks) std::free(b);
    alive = false;
  }
  static thread_local bool alive;  // trivially destructible: readable after ~Cache at thread exit
};
thread_local bool Cache::alive = true;
thread_local Cache cache;

}  // namespace

bool caching() { return kCaching; }

size_t class_size(size_t bytes) {
  if (bytes > kMaxCachedBytes) return (bytes + 63) / 64 * 64;  // not cached: no rounding up
  if (bytes <= 256) return bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
  const int top = std::bit_width(bytes - 1) - 1;
  const size_t step = size_t(1) << (top - 2);
  const size_t rounded = (bytes + step - 1) / step * step;
  return std::max<size_t>(64, (rounded + 63) / 64 * 64);
}

std::byte* take(size_t bytes) {
  const size_t size = class_size(bytes);
  if (kCaching && size <= kMaxCachedBytes && Cache::alive) {
    auto& blocks = cache.free_blocks[class_index(size)];
    if (!blocks.empty()) {
      std::byte* b = blocks.back();
      blocks.pop_back();
      cache.idle_bytes -= size;
      return b;
    }
  }
  return static_cast<std::byte*>(std::aligned_alloc(64, size));
}

void give_back(std::byte* block, size_t bytes) {
  if (!block) return;
  const size_t size = class_size(bytes);
  if (kCaching && size <= kMaxCachedBytes && Cache::alive && cache.idle_bytes + size <= kMaxCachedTotal) {
    cache.free_blocks[class_index(size)].push_back(block);
    cache.idle_bytes += size;
    return;
  }
  std::free(block);
}

}  // namespace shrink::block_cache
