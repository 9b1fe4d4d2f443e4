// Threads: parallel_for over OpenMP (or over a team kept waiting, with_thread_team), the thread
// count, and flushing denormals (which make fp32 arithmetic ~300x slower on this hardware) in
// every thread that does work.
#pragma once
#include <cstdint>
#include <functional>

namespace shrink {

int num_threads();
void set_num_threads(int threads);  // <= 0 restores the default (hardware cores or OMP_NUM_THREADS)

// Calls body(begin, end) on disjoint chunks of [begin, end) of at least `grain` items each. An
// exception from any chunk is rethrown here (the first one; the other chunks run to their end).
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body);

// True inside a parallel_for body (where a nested parallel_for runs serially).
bool in_parallel_for();

// Runs body() on the calling thread with the other threads held ready for its parallel_for calls:
// they wait spinning (then blocked, after 0.5 ms idle) between calls, so a call starts in well
// under a microsecond instead of opening an OpenMP region each time. For work made of many short
// parallel steps (decoding a token: ~120 products of 0.1-1 MB). Runs body() directly when there
// is one thread or when called inside a parallel_for or another team. Exceptions reach the caller.
// SHRINK_NO_THREAD_TEAM=1 in the environment turns teams off (body() runs directly), for
// measuring one against the other in the same session.
void with_thread_team(const std::function<void()>& body);

// Sets flush-to-zero and denormals-are-zero for the calling thread (idempotent, cheap).
void flush_denormals_in_this_thread();

}  // namespace shrink
