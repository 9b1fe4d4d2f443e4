// Scratch memory for a kernel, kept per thread: LineBuffer<T>::get(count) returns room for
// `count` values that starts on a 64-byte cache line and ends on one, so that nothing another
// thread writes shares its lines. Grown as needed, never shrunk; freed with its thread.
//
// Why the lines matter: the int4 decode GEMV's per-thread panel scales had lived in a
// thread_local std::vector (a few hundred bytes, 16-byte aligned, from the thread's heap).
// Rewritten for every panel and re-read every step, they shared their first and last cache line
// with whatever the heap put beside them; in a scratch program where that was an output the other
// thread wrote, the products of a SmolLM2 token took 1.2x as long as with the same scales in lines
// of their own (2 threads, weights resident in L3, alternating in one process).
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
