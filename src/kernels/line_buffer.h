// Scratch memory for a kernel, kept per thread: LineBuffer<T>::get(count) returns room for
// `count` values that starts on a 64-byte cache line and ends on one, so that nothing another
// thread writes shares its lines. Grown as needed, never shrunk; freed with its thread.
//
// Why: a thread_local std::vector of a few hundred bytes (16-byte aligned, from the heap) shares
// its first and last cache line with whatever the heap puts beside it, which another thread may
// be writing. The int4 decode GEMV's panel scales moved here together with each panel's scales
// starting on a line of its own (avx2::panel_scale_floats): SmolLM2's per-token products then took
// 0.95x the time; the two changes were not measured apart. Lines of its own are the safe default
// for scratch that a kernel rewrites while other threads run.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>
#include <type_traits>

namespace shrink::kernel_variants {

template <class T>
class LineBuffer {
  static_assert(std::is_trivially_copyable_v<T> && alignof(T) <= 64);

 public:
  LineBuffer() = default;
  LineBuffer(const LineBuffer&) = delete;
  LineBuffer& operator=(const LineBuffer&) = delete;
  ~LineBuffer() { std::free(data_); }

  // Room for `count` values (uninitialized, or as the last call left them).
  T* get(size_t count) {
    const size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
    if (bytes > bytes_) {
      void* grown = std::aligned_alloc(64, bytes);
      if (!grown) throw std::bad_alloc();
      std::free(data_);
      data_ = static_cast<T*>(grown);
      bytes_ = bytes;
    }
    return data_;
  }

 private:
  T* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace shrink::kernel_variants
