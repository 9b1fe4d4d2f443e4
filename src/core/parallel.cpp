// parallel_for over OpenMP; every worker flushes denormals before it runs the body, and an
// exception thrown in any chunk is carried out of the region and rethrown in the caller (one
// escaping an OpenMP region would terminate the process).
#include "shrink/core/parallel.h"

#include <omp.h>
#include <xmmintrin.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <unordered_map>

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

namespace {

// How many threads split `items` items of at least `grain` each: 1 inside a region, where a
// nested call runs serially.
int64_t threads_for(int64_t items, int64_t grain) {
  if (omp_in_parallel()) return 1;
  grain = std::max<int64_t>(grain, 1);
  return std::min<int64_t>(num_threads(), (items + grain - 1) / grain);
}

// Runs the threads' chunks and keeps the first exception any of them throws, to rethrow in the
// caller after the region (one escaping an OpenMP region would terminate the process).
class FirstError {
 public:
  void run(const std::function<void(int64_t, int64_t)>& body, int64_t lo, int64_t hi) {
    try {
      body(lo, hi);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::exception_ptr error_;
  std::mutex mutex_;
};

}  // namespace

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body) {
  if (end <= begin) return;
  flush_denormals_in_this_thread();
  const int64_t items = end - begin, chunks = threads_for(items, grain);
  if (chunks <= 1) {
    body(begin, end);
    return;
  }
  FirstError error;
#pragma omp parallel for num_threads(int(chunks)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    flush_denormals_in_this_thread();
    error.run(body, begin + items * chunk / chunks, begin + items * (chunk + 1) / chunks);
  }
  error.rethrow();
}

void ThreadSpeeds::shares(int threads, double* shares) const {
  threads = std::clamp(threads, 1, kMaxThreads);
  double total = 0;
  for (int t = 0; t < threads; ++t) {
    shares[t] = weight_[t].load(std::memory_order_relaxed);
    if (shares[t] <= 0) {  // not measured for this team size yet
      std::fill(shares, shares + threads, 1.0 / threads);
      return;
    }
    total += shares[t];
  }
  for (int t = 0; t < threads; ++t) shares[t] /= total;
}

void ThreadSpeeds::record(const int64_t* items, const double* seconds, int threads) {
  if (threads < 2 || threads > kMaxThreads) return;
  // Of each call's measurement in the running estimate: single calls of SmolLM2's decode products
  // (10-50 us) scatter by 20-40% on the development VM, so it takes some ten calls to move.
  constexpr double kNewWeight = 0.15;
  std::array<double, kMaxThreads> speed, old;
  double total = 0;
  for (int t = 0; t < threads; ++t) {
    if (items[t] <= 0 || !(seconds[t] > 0)) return;  // nothing to learn from this call
    speed[t] = double(items[t]) / seconds[t];
    total += speed[t];
  }
  shares(threads, old.data());
  // No thread below a quarter of an equal share: a thread descheduled once keeps enough work
  // to be measured again.
  const double floor = 0.25 / threads;
  double sum = 0;
  for (int t = 0; t < threads; ++t) {
    speed[t] = std::max(floor, (1 - kNewWeight) * old[t] + kNewWeight * speed[t] / total);
    sum += speed[t];
  }
  for (int t = 0; t < threads; ++t) weight_[t].store(float(speed[t] / sum), std::memory_order_relaxed);
}

ThreadSpeeds& thread_speeds(uint64_t key) {
  static std::mutex mutex;
  static std::unordered_map<uint64_t, ThreadSpeeds> speeds;  // elements never move
  std::lock_guard<std::mutex> lock(mutex);
  return speeds[key];
}

void parallel_for_balanced(int64_t begin, int64_t end, int64_t grain, ThreadSpeeds& speeds,
                           const std::function<void(int64_t, int64_t)>& body) {
  if (end <= begin) return;
  flush_denormals_in_this_thread();
  const int64_t items_in_all = end - begin;
  const int threads = int(std::min<int64_t>(threads_for(items_in_all, grain), ThreadSpeeds::kMaxThreads));
  if (threads <= 1) {
    body(begin, end);
    return;
  }
  // Share t is [bounds[t], bounds[t + 1]): the cumulative shares rounded to whole items.
  std::array<double, ThreadSpeeds::kMaxThreads> share;
  speeds.shares(threads, share.data());
  std::array<int64_t, ThreadSpeeds::kMaxThreads + 1> bounds;
  bounds[threads] = end;
  double cumulative = 0;
  for (int t = 0; t < threads; ++t) {
    bounds[t] = std::min(end, begin + int64_t(std::llround(cumulative * double(items_in_all))));
    cumulative += share[t];
  }
  std::array<int64_t, ThreadSpeeds::kMaxThreads> items{};
  std::array<double, ThreadSpeeds::kMaxThreads> seconds{};
  bool whole_team = true;
  FirstError error;
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
  {
    flush_denormals_in_this_thread();
    const int team = omp_get_num_threads();  // the runtime may give fewer threads than asked
    if (team < threads && omp_get_thread_num() == 0) whole_team = false;  // then the times overlap
    for (int t = omp_get_thread_num(); t < threads; t += team) {
      if (bounds[t] >= bounds[t + 1]) continue;
      error.run(body, bounds[t], bounds[t + 1]);
      items[t] = bounds[t + 1] - bounds[t];
      seconds[t] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  }
  error.rethrow();
  if (whole_team) speeds.record(items.data(), seconds.data(), threads);
}

bool in_parallel_for() { return omp_in_parallel(); }

}  // namespace shrink
