// parallel_for over OpenMP; every worker flushes denormals before it runs the body, and an
// exception thrown in any chunk is carried out of the region and rethrown in the caller (one
// escaping an OpenMP region would terminate the process).
#include "shrink/core/parallel.h"

#include <omp.h>
#include <xmmintrin.h>

#include <algorithm>
#include <exception>
#include <mutex>

namespace shrink {
namespace {
int g_threads = 0;  // 0: default
}

void flush_denormals_in_this_thread() {
  thread_local bool done = false;
  if (done) return;
  _mm_setcsr(_mm_getcsr() | 0x8040);  // FTZ (bit 15) | DAZ (bit 6)
  done = true;
}

int num_threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

void set_num_threads(int threads) { g_threads = std::max(threads, 0); }

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body) {
  if (end <= begin) return;
  flush_denormals_in_this_thread();
  const int64_t items = end - begin;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = std::min<int64_t>(num_threads(), (items + grain - 1) / grain);
  if (chunks <= 1 || omp_in_parallel()) {  // no nesting: a parallel_for inside one runs serially
    body(begin, end);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel for num_threads(int(chunks)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    flush_denormals_in_this_thread();
    const int64_t lo = begin + items * chunk / chunks;
    const int64_t hi = begin + items * (chunk + 1) / chunks;
    try {
      body(lo, hi);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

bool in_parallel_for() { return omp_in_parallel(); }

}  // namespace shrink
