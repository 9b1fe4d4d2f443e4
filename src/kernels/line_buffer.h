// Scratch memory for a kernel, kept per thread: LineBuffer<T>::get(count) returns room for
// `count` values that starts on a 64-byte cache line and ends on one, so that nothing another
// thread writes shares its lines. Grown as needed, never shrunk; freed with its thread.
//
// Why: a thread_local std::vector of a few hundred bytes (16-byte aligned, from the heap) shares
// its first and last cache line with whatever the heap puts beside it, which another thread may
// be writing. For the int4 decode GEMV's panel scales that alone measured no different; what
// gained (SmolLM2's per-token products 0.95x the time) was each panel's scales starting on a line
// of their own (avx2::panel_scale_floats). Lines of its own are still the safe default for
// scratch that a kernel rewrites while other threads run.
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
