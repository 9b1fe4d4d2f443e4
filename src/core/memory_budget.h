// The bytes held by tensors, checked against what the machine can still give before each block is
// taken. Linux hands out address space freely and kills the process later, when the pages are
// touched: a --batch-size of 100,000 for the GPT zoo model had the trainer OOM-killed (exit 137)
// halfway through a step. Here the allocation that would not fit is refused with an error that
// says how much was asked and how much was left, and the command exits 1 like any failed work.
#pragma once
#include <cstddef>
#include <cstdint>

namespace shrink::memory_budget {

// Bytes the process could still take without the kernel swapping it out or killing it:
// /proc/meminfo's MemAvailable plus SwapFree, at most what its cgroup has left (memory.max minus
// memory.current); 0 when none of them can be read (no limit is then enforced).
uint64_t available_bytes();

// Called by Storage for each owned block: reserve before taking it (throws Error when `bytes`
// more would leave the machine less than a margin: 1/32 of what tensors could have, 64 MB to
// 1 GB), release when it is given back. The machine is asked again only when the tensors have
// taken half of what it last said was left, so the common allocation costs one atomic add.
void reserve(size_t bytes);
void release(size_t bytes);

// What is left for more tensors now: available_bytes(), or the pretended machine's remainder
// (0: unknown). For work that can tell its size up front and refuse before it starts.
uint64_t left_bytes();

// Bytes reserved now, and the most reserved at once since reset_peak() (which sets it to now):
// what a piece of work needed at its peak, measured on a small size to foresee a large one.
uint64_t reserved_bytes();
uint64_t peak_reserved_bytes();
void reset_peak();

// Tests: pretend the machine has `bytes` left for tensors besides those held now, less what the
// tensors taken after this hold (0: ask the machine again).
void set_available_for_testing(uint64_t bytes);

}  // namespace shrink::memory_budget
