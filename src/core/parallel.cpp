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
#include <thread>
#include <unordered_map>

#include "core/env_switch.h"

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

int available_cores() { return omp_get_num_procs(); }

int num_threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

void set_num_threads(int threads) { g_threads = std::max(threads, 0); }

namespace {

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

// run_as_team's team, seen from its leader: one mailbox per helper, through which the leader posts
// a share of a parallel_for and the helper reports when it is done.
struct alignas(64) Mailbox {
  std::atomic<uint64_t> posted{0}, finished{0};  // shares posted, and finished, so far
  const std::function<void(int64_t, int64_t)>* body = nullptr;
  FirstError* error = nullptr;
  int64_t lo = 0, hi = 0;
  std::chrono::steady_clock::time_point start;
  double seconds = 0;  // from start to the share's end
};

struct HelperTeam {
  int size = 1;  // the leader and its helpers
  std::array<Mailbox, ThreadSpeeds::kMaxThreads> mailbox;  // [1, size)
  std::atomic<bool> stop{false};
  // team_prefetch's range, published by `ticket` (odd while the leader writes it: a seqlock).
  alignas(64) std::atomic<uint64_t> ticket{0};
  std::atomic<const std::byte*> prefetch_begin{nullptr}, prefetch_end{nullptr};
};

// The team whose leader this thread is, outside the shares it runs itself (where a nested call
// runs serially, as in any other region).
thread_local HelperTeam* t_team = nullptr;

// How many threads split `items` items of at least `grain` each: 1 inside a region, where a
// nested call runs serially, except on a helper team's leader (its team's size at most).
int64_t threads_for(int64_t items, int64_t grain) {
  if (omp_in_parallel() && !t_team) return 1;
  grain = std::max<int64_t>(grain, 1);
  return std::min<int64_t>(t_team ? t_team->size : num_threads(), (items + grain - 1) / grain);
}

// Waiting on a team's atomics: spinning at first (a share takes 1-50 us), then yielding the core,
// so that a team with more threads than free cores (a loaded host, tests in parallel) still moves
// at the pace of the scheduler rather than of whole time slices spun away.
class Backoff {
 public:
  void wait() {
    if (++spins_ < kSpins)
      _mm_pause();
    else
      std::this_thread::yield();
  }
  void reset() { spins_ = 0; }

 private:
  static constexpr int kSpins = 1 << 14;  // some 100-500 us of pauses, by the CPU
  int spins_ = 0;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs share t = [bounds[t], bounds[t + 1]) of body on thread t, t < threads (empty shares
// skipped), on the calling leader's team or in a new OpenMP region; seconds[t]: from the start to
// the end of share t. Returns false when the runtime gave fewer threads than shares (the times
// then overlap).
bool run_shares(int threads, const int64_t* bounds, const std::function<void(int64_t, int64_t)>& body,
                FirstError& error, double* seconds) {
  const auto start = std::chrono::steady_clock::now();
  if (HelperTeam* team = t_team) {
    for (int t = 1; t < threads; ++t) {
      if (bounds[t] >= bounds[t + 1]) continue;
      Mailbox& m = team->mailbox[size_t(t)];
      m.body = &body, m.error = &error, m.lo = bounds[t], m.hi = bounds[t + 1], m.start = start;
      m.posted.store(m.posted.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    t_team = nullptr;
    if (bounds[0] < bounds[1]) error.run(body, bounds[0], bounds[1]);
    seconds[0] = seconds_since(start);
    t_team = team;
    for (int t = 1; t < threads; ++t) {
      if (bounds[t] >= bounds[t + 1]) continue;
      Mailbox& m = team->mailbox[size_t(t)];
      for (Backoff backoff; m.finished.load(std::memory_order_acquire) != m.posted.load(std::memory_order_relaxed);)
        backoff.wait();
      seconds[t] = m.seconds;
    }
    return true;
  }
  bool whole_team = true;
#pragma omp parallel num_threads(threads)
  {
    flush_denormals_in_this_thread();
    const int team = omp_get_num_threads();  // the runtime may give fewer threads than asked
    if (team < threads && omp_get_thread_num() == 0) whole_team = false;
    for (int t = omp_get_thread_num(); t < threads; t += team) {
      if (bounds[t] >= bounds[t + 1]) continue;
      error.run(body, bounds[t], bounds[t + 1]);
      seconds[t] = seconds_since(start);
    }
  }
  return whole_team;
}

std::atomic<uint64_t> g_read_ahead_bytes{0};

// What a helper reads of team_prefetch's range between looks at its mailbox: its own part, the
// one a parallel call's even split would give it (helper t of n threads: [t/n, (t+1)/n) of the
// range), as plain loads of a byte a line, 1 KB at a time.
// Why plain loads of the helper's part alone, measured on the 2-core Zen 5 host (SmolLM2 int4
// decode, alternating runs, 40 pairs each, in one hour): reading all of the range ran
// 1.008-1.012x as fast as no reading ahead (4 KB steps: 0.969x, the helper late to its next
// share); its own half with loads 1.014-1.087x (~1.04x typical), with prefetcht1 instructions
// 1.000-1.027x. In a later hour, with the memory reading 88 GB/s, the kept form gained ~1.00x.
class Prefetcher {
 public:
  explicit Prefetcher(int me) : me_(me) {}

  // Reads the next 1 KB of this helper's part of the current range; false when nothing is left.
  bool step(const HelperTeam& team) {
    const uint64_t ticket = team.ticket.load(std::memory_order_acquire);
    if (ticket != seen_ && ticket % 2 == 0) {
      const std::byte* begin = team.prefetch_begin.load(std::memory_order_relaxed);
      const std::byte* end = team.prefetch_end.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (team.ticket.load(std::memory_order_relaxed) == ticket) {  // not rewritten meanwhile
        // The team's size was set before the leader could post (read here, after the ticket).
        const ptrdiff_t length = end - begin, size = std::max(team.size, me_ + 1);
        seen_ = ticket;
        next_ = begin + length * me_ / size;
        end_ = begin + length * (me_ + 1) / size;
      }
    }
    if (next_ >= end_) return false;
    const std::byte* stop = std::min(end_, next_ + kStepBytes);
    for (const std::byte* p = next_; p < stop; p += 64) (void)*reinterpret_cast<const volatile uint8_t*>(p);
    g_read_ahead_bytes.fetch_add(uint64_t(stop - next_), std::memory_order_relaxed);
    next_ = stop;
    return true;
  }

 private:
  static constexpr ptrdiff_t kStepBytes = 1024;
  int me_;
  uint64_t seen_ = 0;
  const std::byte* next_ = nullptr;
  const std::byte* end_ = nullptr;
};

bool reading_ahead_enabled() {
  static const bool on = switched_on("SHRINK_TEAM_PREFETCH");
  return on;
}

// A helper's loop: the shares its leader posts, until the leader is done.
void help(HelperTeam& team, int me) {
  Mailbox& m = team.mailbox[size_t(me)];
  uint64_t done = 0;
  Backoff backoff;
  Prefetcher prefetcher(me);
  for (;;) {
    if (const uint64_t posted = m.posted.load(std::memory_order_acquire); posted != done) {
      m.error->run(*m.body, m.lo, m.hi);
      m.seconds = seconds_since(m.start);
      done = posted;
      m.finished.store(done, std::memory_order_release);
      backoff.reset();
      continue;
    }
    if (team.stop.load(std::memory_order_acquire)) return;
    if (prefetcher.step(team)) continue;
    backoff.wait();
  }
}

}  // namespace

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body) {
  if (end <= begin) return;
  flush_denormals_in_this_thread();
  const int64_t items = end - begin;
  const int chunks = int(std::min<int64_t>(threads_for(items, grain), ThreadSpeeds::kMaxThreads));
  if (chunks <= 1) {
    body(begin, end);
    return;
  }
  std::array<int64_t, ThreadSpeeds::kMaxThreads + 1> bounds;
  for (int t = 0; t <= chunks; ++t) bounds[size_t(t)] = begin + items * t / chunks;
  std::array<double, ThreadSpeeds::kMaxThreads> seconds{};
  FirstError error;
  run_shares(chunks, bounds.data(), body, error, seconds.data());
  error.rethrow();
}

void run_as_team(const std::function<void()>& leader) {
  flush_denormals_in_this_thread();
  const int threads = std::min(num_threads(), ThreadSpeeds::kMaxThreads);
  if (threads < 2 || threads > available_cores() || omp_in_parallel()) {
    leader();
    return;
  }
  HelperTeam team;  // its size set by the leader, from the threads the runtime gives
  std::exception_ptr failure;
#pragma omp parallel num_threads(threads)
  {
    flush_denormals_in_this_thread();
    if (omp_get_thread_num() == 0) {
      team.size = omp_get_num_threads();  // the runtime may give fewer threads than asked
      t_team = &team;
      try {
        leader();
      } catch (...) {
        failure = std::current_exception();
      }
      t_team = nullptr;
      team.stop.store(true, std::memory_order_release);
    } else {
      help(team, omp_get_thread_num());
    }
  }
  if (failure) std::rethrow_exception(failure);
}

void team_prefetch(const void* data, size_t bytes) {
  HelperTeam* team = t_team;
  if (!team || team->size < 2 || !reading_ahead_enabled()) return;
  const auto* begin = static_cast<const std::byte*>(data);
  if (team->prefetch_begin.load(std::memory_order_relaxed) == begin &&
      team->prefetch_end.load(std::memory_order_relaxed) == begin + bytes)
    return;
  const uint64_t ticket = team->ticket.load(std::memory_order_relaxed);
  team->ticket.store(ticket + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  team->prefetch_begin.store(begin, std::memory_order_relaxed);
  team->prefetch_end.store(begin + bytes, std::memory_order_relaxed);
  team->ticket.store(ticket + 2, std::memory_order_release);
}

uint64_t read_ahead_bytes() { return g_read_ahead_bytes.load(std::memory_order_relaxed); }

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
  for (int t = 0; t < threads; ++t) items[size_t(t)] = std::max<int64_t>(0, bounds[size_t(t) + 1] - bounds[size_t(t)]);
  std::array<double, ThreadSpeeds::kMaxThreads> seconds{};
  FirstError error;
  const bool whole_team = run_shares(threads, bounds.data(), body, error, seconds.data());
  error.rethrow();
  if (whole_team) speeds.record(items.data(), seconds.data(), threads);
}

bool in_parallel_for() { return omp_in_parallel(); }

}  // namespace shrink
