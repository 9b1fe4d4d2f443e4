// A per-thread cache of the 64-byte-aligned blocks behind tensors. Decoding a token runs ~400
// graph nodes, each allocating a small output and freeing its inputs; training steps allocate and
// free the same activations every step. glibc's malloc spent about half of a small node's time
// in those calls (malloc_consolidate on every request above its small bins), so blocks up to
// kMaxCachedBytes are recycled here in size classes four to a doubling (at most 25% larger than
// asked), up to kMaxCachedTotal idle bytes per thread. A block freed on another thread joins that
// thread's cache. Under AddressSanitizer nothing is cached, so a use after free is still found.
//
// Blocks above kMaxCachedBytes (a language model's calibration batch: 2048 tokens x 576-1536
// floats, 4.7-12.6 MB) are mappings of their own, recycled through one cache that every thread
// shares, up to kMaxLargeIdle idle bytes (the oldest unmapped first): a block of the size asked
// for, else the latest idle one resized (mremap keeps its pages). In glibc's heap they interleaved
// with smaller values and fragmented it: GPTQ's calibration returned the holes after each stage
// (malloc_trim, to keep its peak to what is live) and faulted them in again. On the 2-core Zen 4
// host, SmolLM2's GPTQ (128 x 512 tokens) took 129.0 s instead of 132.4 with a peak of 1.2 GB
// instead of 1.6, and 3.3 million page faults instead of 7.5 (without the trim: 122.5 s, 2.4 GB).
#pragma once
#include <cstddef>

namespace shrink::block_cache {

constexpr size_t kMaxCachedBytes = size_t(4) << 20;
constexpr size_t kMaxCachedTotal = size_t(64) << 20;
constexpr size_t kMaxLargeIdle = size_t(256) << 20;

// False under AddressSanitizer: every block goes straight back to malloc.
bool caching();

// The size actually allocated for a request of `bytes`: a multiple of 64, >= bytes (rounded up to
// its class when at most kMaxCachedBytes, to whole 4 KB pages above).
size_t class_size(size_t bytes);

// A block of class_size(bytes) bytes, 64-byte aligned; nullptr when out of memory. Its contents
// are unspecified (a recycled block holds its last user's data).
std::byte* take(size_t bytes);

// Returns a block from take(bytes) (the same `bytes`); frees it when the cache is full.
void give_back(std::byte* block, size_t bytes);

}  // namespace shrink::block_cache
