// Chunks of 2 MB-aligned anonymous memory advised into huge pages, cut into blocks (weight_arena.h).
#include "core/weight_arena.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>

#include "core/env_switch.h"
#include "core/memory_budget.h"
#include "shrink/core/error.h"

namespace shrink::weight_arena {
namespace {

constexpr size_t kPage = size_t(2) << 20;

size_t round_up(size_t bytes, size_t to) { return (bytes + to - 1) / to * to; }

// One mapping of `size` bytes starting on a 2 MB boundary.
struct Chunk {
  std::byte* base = nullptr;
  size_t size = 0;
  explicit Chunk(size_t bytes) : size(round_up(bytes, kPage)) {
    // Map a page more than needed and trim both ends to the boundary.
    const size_t mapped = size + kPage;
    void* at = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (at == MAP_FAILED)
      throw Error("cannot map " + std::to_string(mapped) + " bytes for weight layouts: " + std::strerror(errno));
    const auto address = reinterpret_cast<uintptr_t>(at);
    const uintptr_t aligned = round_up(address, kPage);
    if (aligned > address) ::munmap(at, aligned - address);
    if (const size_t tail = mapped - (aligned - address) - size) ::munmap(reinterpret_cast<void*>(aligned + size), tail);
    base = reinterpret_cast<std::byte*>(aligned);
    if (huge_pages_asked()) ::madvise(base, size, MADV_HUGEPAGE);  // fails only without THP support: 4 KB pages then
  }
  ~Chunk() { ::munmap(base, size); }
  Chunk(const Chunk&) = delete;
  Chunk& operator=(const Chunk&) = delete;
};

// A block's hold on its chunk and on its bytes of the budget.
struct Lease {
  std::shared_ptr<Chunk> chunk;
  size_t bytes;
  Lease(std::shared_ptr<Chunk> c, size_t b) : chunk(std::move(c)), bytes(b) {}
  ~Lease() { memory_budget::release(bytes); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
};

std::mutex g_mutex;
std::weak_ptr<Chunk> g_current;  // the chunk being cut (unmapped with its last block)
size_t g_used = 0;                 // bytes of g_current handed out

}  // namespace

Block take(size_t bytes) {
  Block block;
  if (bytes == 0) return block;
  if (bytes > (size_t(1) << 48))  // no machine maps this much; round_up below would overflow near SIZE_MAX
    throw Error("cannot take " + std::to_string(bytes) + " bytes for weight layouts");
  const size_t size = round_up(bytes, 64);
  memory_budget::reserve(size);
  try {
    std::shared_ptr<Chunk> chunk;
    size_t offset = 0;
    if (size > kChunkBytes / 2) {
      chunk = std::make_shared<Chunk>(size);
    } else {
      std::lock_guard<std::mutex> lock(g_mutex);
      chunk = g_current.lock();
      if (!chunk || chunk->size - g_used < size) {
        chunk = std::make_shared<Chunk>(kChunkBytes);
        g_current = chunk;
        g_used = 0;
      }
      offset = g_used;
      g_used += size;
    }
    block.data_ = chunk->base + offset;
    block.size_ = bytes;
    block.lease_ = std::make_shared<Lease>(std::move(chunk), size);
  } catch (...) {
    memory_budget::release(size);
    throw;
  }
  return block;
}

// SHRINK_HUGE_PAGES=0 leaves the chunks in 4 KB pages (to measure what the huge pages give).
bool huge_pages_asked() {
  static const bool asked = switched_on("SHRINK_HUGE_PAGES");
  return asked;
}

std::string transparent_huge_pages() {
  std::ifstream file("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(file, line)) return "";
  const size_t open = line.find('['), close = line.find(']');
  return open == std::string::npos || close == std::string::npos || close < open ? "" : line.substr(open + 1, close - open - 1);
}

}  // namespace shrink::weight_arena
