// Memory in 2 MB pages for the weight layouts a decoded token reads once each (the int4 panels
// with their scales and mins, the int8 head's panels). With 4 KB pages a SmolLM2 layer's 442 KB
// of panels spans 108 pages, each a TLB miss and a point where the hardware prefetchers stop;
// the same cold int4 GEMV read from 2 MB pages ran 1.04-1.13x faster at SmolLM2's shapes on the
// Zen 5 host in one hour, 1.02-1.05x in another (a plain read 1.05-1.1x); whole tokens 0-4%.
// Linux gives 2 MB pages to anonymous memory that asks for them (MADV_HUGEPAGE;
// transparent_hugepage "madvise" or "always"), but the heap's blocks do not
// ask, and a layer's few hundred KB could not fill a page of their own: here the layouts are cut
// one after another from shared 2 MB-aligned chunks, in the order they are made (the first token
// makes them in the graph's order, so a token reads them front to back). Where the kernel gives
// no huge pages the memory is the same, in 4 KB pages.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace shrink::weight_arena {

// Chunks hold at least this much; a request of more than half of it gets a chunk of its own.
constexpr size_t kChunkBytes = size_t(16) << 20;

// A 64-byte-aligned span cut from a chunk; the chunk is unmapped when its last block is gone.
// Its bytes are counted in the tensors' memory budget (memory_budget::reserve) while it lives.
class Block {
 public:
  Block() = default;
  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  template <class T> T* as() const { return reinterpret_cast<T*>(data_); }

 private:
  friend Block take(size_t bytes);
  std::shared_ptr<const void> lease_;  // keeps the chunk mapped and the budget reserved
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// `bytes` bytes (contents unspecified; an empty Block for 0). Throws Error when the memory budget
// refuses them or the mapping fails.
Block take(size_t bytes);

// Whether chunks ask for huge pages: true unless SHRINK_HUGE_PAGES=0.
bool huge_pages_asked();

// The kernel's transparent huge page mode (/sys/kernel/mm/transparent_hugepage/enabled):
// "always" or "madvise" (the chunks get 2 MB pages where the kernel has them free), "never", or
// "" when the file cannot be read (no THP support). For `shrink info`.
std::string transparent_huge_pages();

}  // namespace shrink::weight_arena
