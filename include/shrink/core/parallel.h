// Threads: parallel_for over OpenMP, the thread count, and flushing denormals (which make fp32
// arithmetic ~300x slower on this hardware) in every thread that does work.
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

// Sets flush-to-zero and denormals-are-zero for the calling thread (idempotent, cheap).
void flush_denormals_in_this_thread();

}  // namespace shrink
