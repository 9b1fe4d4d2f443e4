#include "core/block_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <utility>
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

// Blocks above kMaxCachedBytes: idle mappings in the order they were given back, shared by every
// thread (such blocks are few: a lock per call costs nothing next to filling them).
struct LargeBlocks {
  std::mutex mutex;
  std::vector<std::pair<size_t, std::byte*>> idle;  // (size, block), oldest first
  size_t idle_bytes = 0;
};

LargeBlocks& large_blocks() {
  static LargeBlocks* blocks = new LargeBlocks;  // never destroyed: threads may free blocks at exit
  return *blocks;
}

// The most recently given back block of that size; else the most recent of any size, resized
// (mremap keeps its pages: only the growth is new memory); else a new mapping.
std::byte* take_large(size_t size) {
  LargeBlocks& l = large_blocks();
  std::pair<size_t, std::byte*> found{0, nullptr};
  {
    std::lock_guard<std::mutex> lock(l.mutex);
    if (!l.idle.empty()) {
      size_t i = l.idle.size() - 1;
      for (size_t j = l.idle.size(); j-- > 0;)
        if (l.idle[j].first == size) {
          i = j;
          break;
        }
      found = l.idle[i];
      l.idle.erase(l.idle.begin() + std::ptrdiff_t(i));
      l.idle_bytes -= found.first;
    }
  }
  if (found.second && found.first == size) return found.second;
  if (found.second) {
    if (void* p = mremap(found.second, found.first, size, MREMAP_MAYMOVE); p != MAP_FAILED) return static_cast<std::byte*>(p);
    munmap(found.second, found.first);
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
}

void give_back_large(std::byte* block, size_t size) {
  std::vector<std::pair<size_t, std::byte*>> unmap;
  if (size > kMaxLargeIdle) {
    unmap.emplace_back(size, block);
  } else {
    LargeBlocks& l = large_blocks();
    std::lock_guard<std::mutex> lock(l.mutex);
    size_t oldest = 0;
    while (l.idle_bytes + size > kMaxLargeIdle) {
      unmap.push_back(l.idle[oldest]);
      l.idle_bytes -= l.idle[oldest++].first;
    }
    l.idle.erase(l.idle.begin(), l.idle.begin() + std::ptrdiff_t(oldest));
    l.idle.emplace_back(size, block);
    l.idle_bytes += size;
  }
  for (const auto& [bytes, b] : unmap) munmap(b, bytes);
}

}  // namespace

bool caching() { return kCaching; }

size_t class_size(size_t bytes) {
  if (bytes > kMaxCachedBytes) return kCaching ? (bytes + 4095) / 4096 * 4096 : (bytes + 63) / 64 * 64;
  if (bytes <= 256) return bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
  const int top = std::bit_width(bytes - 1) - 1;
  const size_t step = size_t(1) << (top - 2);
  const size_t rounded = (bytes + step - 1) / step * step;
  return std::max<size_t>(64, (rounded + 63) / 64 * 64);
}

std::byte* take(size_t bytes) {
  const size_t size = class_size(bytes);
  if (kCaching && size > kMaxCachedBytes) return take_large(size);
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
  if (kCaching && size > kMaxCachedBytes) return give_back_large(block, size);
  if (kCaching && size <= kMaxCachedBytes && Cache::alive && cache.idle_bytes + size <= kMaxCachedTotal) {
    cache.free_blocks[class_index(size)].push_back(block);
    cache.idle_bytes += size;
    return;
  }
  std::free(block);
}

}  // namespace shrink::block_cache
