// parallel_for over OpenMP; every worker flushes denormals before it runs the body, and an
// exception thrown in any chunk is carried out of the region and rethrown in the caller (one
// escaping an OpenMP region would terminate the process).
//
// with_thread_team keeps one OpenMP region open around its body: thread 0 runs the body, the
// others wait on an atomic generation counter, and the body's parallel_for calls hand them their
// chunks through it (a store and a cache-line transfer) instead of opening a region each (libgomp's
// fork and join, ~2-3 us here: a decoded token's 121 int4 products lost ~10% of their time to it).
#include "shrink/core/parallel.h"

#include <immintrin.h>
#include <omp.h>
#include <xmmintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <utility>

namespace shrink {
namespace {
int g_threads = 0;  // 0: default

// Chunks [begin + items * c / chunks, begin + items * (c + 1) / chunks): the same split for the
// OpenMP and the team paths.
int64_t chunk_start(int64_t begin, int64_t items, int64_t chunk, int64_t chunks) { return begin + items * chunk / chunks; }

// The first exception out of any chunk.
struct FirstError {
  std::exception_ptr error;
  std::mutex mutex;
  void keep_current() {
    std::lock_guard<std::mutex> lock(mutex);
    if (!error) error = std::current_exception();
  }
  void rethrow() {
    if (error) std::rethrow_exception(std::exchange(error, nullptr));
  }
};

struct Team {
  int size = 1;
  // Bumped by the leader to publish a job (or the end of the team); workers wait for a change.
  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};   // workers still running the current job's chunks
  std::atomic<int> sleepers{0};  // workers blocked in generation.wait (notify only then)
  bool finished = false;
  // The current job: chunk c of `chunks` goes to thread c (the leader takes chunk 0).
  const std::function<void(int64_t, int64_t)>* body = nullptr;
  int64_t begin = 0, items = 0, chunks = 0;
  FirstError error;
  bool leader_in_chunk = false;

  void run_chunk(int64_t chunk) {
    try {
      body->operator()(chunk_start(begin, items, chunk, chunks), chunk_start(begin, items, chunk + 1, chunks));
    } catch (...) {
      error.keep_current();
    }
  }

  void publish() {
    generation.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) > 0) generation.notify_all();
  }

  // A worker spins for a while (the gaps between a decoder's products are microseconds), then
  // blocks until the generation moves past `seen`.
  uint64_t wait_past(uint64_t seen) {
    using Clock = std::chrono::steady_clock;
    const Clock::time_point start = Clock::now();
    for (int spins = 1;; ++spins) {
      const uint64_t now = generation.load(std::memory_order_acquire);
      if (now != seen) return now;
      _mm_pause();
      if (spins % 256 == 0 && Clock::now() - start > std::chrono::microseconds(500)) break;
    }
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    while (generation.load(std::memory_order_seq_cst) == seen) generation.wait(seen, std::memory_order_seq_cst);
    sleepers.fetch_sub(1, std::memory_order_relaxed);
    return generation.load(std::memory_order_acquire);
  }

  void work(int thread) {
    flush_denormals_in_this_thread();
    uint64_t seen = 0;
    for (;;) {
      seen = wait_past(seen);
      if (finished) return;
      if (thread < chunks) run_chunk(thread);
      pending.fetch_sub(1, std::memory_order_release);
    }
  }

  void parallel_for(int64_t from, int64_t count, int64_t chunk_count, const std::function<void(int64_t, int64_t)>& job) {
    body = &job;
    begin = from;
    items = count;
    chunks = chunk_count;
    pending.store(size - 1, std::memory_order_relaxed);
    publish();
    leader_in_chunk = true;
    run_chunk(0);
    leader_in_chunk = false;
    while (pending.load(std::memory_order_acquire) > 0) _mm_pause();
    body = nullptr;
    error.rethrow();
  }

  void finish() {
    finished = true;
    publish();
  }
};

thread_local Team* t_leading = nullptr;  // the team this thread leads inside with_thread_team

}  // namespace

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
  Team* team = t_leading && !t_leading->leader_in_chunk ? t_leading : nullptr;
  const int64_t chunks = std::min<int64_t>(team ? team->size : num_threads(), (items + grain - 1) / grain);
  if (chunks <= 1 || (!team && omp_in_parallel())) {  // no nesting: a parallel_for inside one runs serially
    body(begin, end);
    return;
  }
  if (team) {
    team->parallel_for(begin, items, chunks, body);
    return;
  }
  FirstError error;
#pragma omp parallel for num_threads(int(chunks)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    flush_denormals_in_this_thread();
    try {
      body(chunk_start(begin, items, chunk, chunks), chunk_start(begin, items, chunk + 1, chunks));
    } catch (...) {
      error.keep_current();
    }
  }
  error.rethrow();
}

bool in_parallel_for() {
  if (t_leading) return t_leading->leader_in_chunk;
  return omp_in_parallel();
}

void with_thread_team(const std::function<void()>& body) {
  static const bool disabled = [] {
    const char* off = std::getenv("SHRINK_NO_THREAD_TEAM");
    return off && *off && std::string(off) != "0";
  }();
  const int threads = num_threads();
  if (disabled || threads <= 1 || t_leading || omp_in_parallel()) {
    body();
    return;
  }
  Team team;
  FirstError error;
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num();
    if (thread == 0) {
      team.size = omp_get_num_threads();  // the workers read it only after the first publish
      t_leading = &team;
      try {
        body();
      } catch (...) {
        error.keep_current();
      }
      t_leading = nullptr;
      team.finish();
    } else {
      team.work(thread);
    }
  }
  error.rethrow();
}

}  // namespace shrink
