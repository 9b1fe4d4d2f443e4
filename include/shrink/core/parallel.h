// Threads: parallel_for over OpenMP, the thread count, and flushing denormals (which make fp32
// arithmetic ~300x slower on this hardware) in every thread that does work.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace shrink {

int num_threads();
// The cores this process may run on (its affinity mask; OpenMP's count of processors).
int available_cores();
void set_num_threads(int threads);  // <= 0 restores the default (hardware cores or OMP_NUM_THREADS)

// Calls body(begin, end) on disjoint chunks of [begin, end) of at least `grain` items each. An
// exception from any chunk is rethrown here (the first one; the other chunks run to their end).
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body);

// How fast each thread of the team has been, relative to the others, on one kind of work: the
// weights parallel_for_balanced sizes the threads' shares by. Keep one per kind of work (a static
// at a call site, or thread_speeds(key)): besides the cores' speeds as they are now, it learns
// what is uneven in how the work splits (a share that spans three matrices is slower than one
// inside a single matrix). Relaxed atomics: calls racing on one object only make a share a
// little off, never leave items out.
class ThreadSpeeds {
 public:
  static constexpr int kMaxThreads = 64;
  // The shares of the work of a team of `threads` threads into shares[0 .. threads) (they sum
  // to 1; equal until measured).
  void shares(int threads, double* shares) const;
  // Thread t of a team of `threads` finished items[t] items after seconds[t] (from the region's
  // start, so a late start counts against it).
  void record(const int64_t* items, const double* seconds, int threads);

 private:
  std::array<std::atomic<float>, kMaxThreads> weight_{};  // 0: not measured
};

// The ThreadSpeeds of one kind of work, named by `key` (a product's shape, say): calls with the
// same key learn together. Thread-safe; the reference stays valid.
ThreadSpeeds& thread_speeds(uint64_t key);

// A key for thread_speeds with one more size folded in: start from a constant naming the kind of
// work (so that two kernels of the same sizes learn apart) and fold each size of the call.
constexpr uint64_t speeds_key(uint64_t key, int64_t size) { return key * 0x9e3779b97f4a7c15ull + uint64_t(size); }

// parallel_for with one contiguous share per thread (as many threads as have `grain` items
// each), each share sized by the threads' speeds measured on this `speeds`' earlier calls, so
// that the threads finish together when one core is slower than the other (on the 2-core
// development VM one vCPU ran at 1.5 GHz beside the other's 2.4 for seconds at a time, and a
// static half each left the faster thread waiting). Results must not depend on where the
// shares fall. Nested in another region it runs serially and measures nothing.
void parallel_for_balanced(int64_t begin, int64_t end, int64_t grain, ThreadSpeeds& speeds,
                           const std::function<void(int64_t, int64_t)>& body);

// Runs leader() on the calling thread as the leader of a team of num_threads() threads that
// stays together until it returns: the parallel_for and parallel_for_balanced calls leader()
// makes are split into shares as usual, but handed to the other threads through a mailbox each,
// on which they spin meanwhile, rather than through a new OpenMP region per call. For work that
// makes many small parallel calls between serial stretches (a decoded token of SmolLM2: ~145
// products and attentions, 5-50 us each). The helpers spin for as long as leader() runs, so it
// should not start threads of its own; in_parallel_for() is true on every thread of the team, so
// that OpenBLAS, say, runs on the leader's thread alone. It runs leader() alone (its calls then
// open regions as usual) with one thread, inside a region, or with more threads than
// available_cores(): spinning helpers would take turns on a core with the leader (SmolLM2 at 4
// threads on 2 cores decoded 10.5 tokens/s as a team, 140.5 without). An exception from leader()
// is rethrown here.
void run_as_team(const std::function<void()>& leader);

// On a run_as_team leader: asks each helper to read its part of [data, data + bytes) into its
// caches while it waits for shares (helper t of n threads the part [t/n, (t+1)/n), which an even
// split of a parallel call over the same bytes would give it), 1 KB between looks at its mailbox.
// For the weights of the next product of a decoded token, which the helper then multiplies from
// its own L2 rather than from memory. A hint: nothing happens off a team's leader or with
// SHRINK_TEAM_PREFETCH=0, and a later call replaces the range (the same range again is a no-op).
// The bytes must stay readable until leader() returns.
void team_prefetch(const void* data, size_t bytes);

// The bytes helpers have read ahead for team_prefetch since the process started.
uint64_t read_ahead_bytes();

// True inside a parallel_for body (where a nested parallel_for runs serially).
bool in_parallel_for();

// Sets flush-to-zero and denormals-are-zero for the calling thread (idempotent, cheap).
void flush_denormals_in_this_thread();

}  // namespace shrink
