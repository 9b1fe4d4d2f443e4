// The tensors' memory budget (see memory_budget.h): a count, and the machine asked when it grows.
#include "core/memory_budget.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <limits>
#include <mutex>
#include <string>

#include "shrink/core/error.h"

namespace shrink::memory_budget {
namespace {

std::atomic<uint64_t> g_reserved{0};
std::atomic<uint64_t> g_peak{0};
// The reserved bytes up to which no check is needed: what was reserved when the machine was
// last asked, plus half of what it had left then beyond the margin.
std::atomic<uint64_t> g_limit{0};
// Tests: a machine with this many bytes for tensors beyond those held when it was set.
std::atomic<uint64_t> g_pretend_bytes{0}, g_pretend_base{0};
std::mutex g_asking;

// MemAvailable + SwapFree from /proc/meminfo in one pass ("MemAvailable:   1234 kB"); false when
// the file or MemAvailable is missing.
bool meminfo_available(uint64_t& bytes) {
  std::ifstream meminfo("/proc/meminfo");
  std::string name, rest;
  uint64_t value = 0;
  bool found = false;
  bytes = 0;
  while (meminfo >> name >> value) {
    std::getline(meminfo, rest);
    if (name == "MemAvailable:") bytes += value * 1024, found = true;
    if (name == "SwapFree:") bytes += value * 1024;
  }
  return found;
}

// A number in a cgroup v2 file ("max" or unreadable: false).
bool cgroup_number(const char* path, uint64_t& value) {
  std::ifstream file(path);
  std::string text;
  if (!(file >> text) || text == "max") return false;
  try {
    value = std::stoull(text);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string size_text(uint64_t bytes) {
  return bytes < 1000000000 ? fmt::format("{:.0f} MB", double(bytes) / 1e6) : fmt::format("{:.1f} GB", double(bytes) / 1e9);
}

}  // namespace

uint64_t available_bytes() {
  uint64_t available = 0;
  bool found = meminfo_available(available);
  uint64_t max = 0, current = 0;
  if (cgroup_number("/sys/fs/cgroup/memory.max", max) && cgroup_number("/sys/fs/cgroup/memory.current", current)) {
    const uint64_t left = max > current ? max - current : 1;
    available = found ? std::min(available, left) : left;
    found = true;
  }
  return found ? std::max<uint64_t>(available, 1) : 0;
}

namespace {

// What is left for tensors with `held` bytes held by them (all in memory by now, as the ops that
// took them have written them): the machine's answer, or the pretended machine's.
uint64_t available_with(uint64_t held) {
  const uint64_t pretend = g_pretend_bytes.load();
  if (!pretend) return available_bytes();
  const int64_t left = int64_t(pretend) - (int64_t(held) - int64_t(g_pretend_base.load()));
  return uint64_t(std::max<int64_t>(left, 1));
}

}  // namespace

void reserve(size_t bytes) {
  const uint64_t before = g_reserved.fetch_add(bytes, std::memory_order_relaxed);
  const uint64_t after = before + bytes;
  for (uint64_t peak = g_peak.load(std::memory_order_relaxed);
       after > peak && !g_peak.compare_exchange_weak(peak, after, std::memory_order_relaxed);) {
  }
  if (after <= g_limit.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(g_asking);
  const uint64_t available = available_with(before);
  if (available == 0) {  // nothing to go by: no limit
    g_limit.store(std::numeric_limits<uint64_t>::max(), std::memory_order_relaxed);
    return;
  }
  // Some room stays for the kernel, the rest of the process and its neighbours: the last block
  // that fitted had the machine at 0.1 GB free.
  const uint64_t margin = std::clamp<uint64_t>((before + available) / 32, uint64_t(64) << 20, uint64_t(1) << 30);
  if (bytes + margin > available) {
    g_reserved.fetch_sub(bytes, std::memory_order_relaxed);
    throw Error(fmt::format("out of memory: {} more for tensors would not fit ({} held by tensors already, {} "
                            "left on this machine); a smaller batch, context or sample count needs less",
                            size_text(bytes), size_text(before), size_text(available)));
  }
  // Asked again after half of what is left: memory the count does not see (vectors, the heap's
  // free lists) grows too, and one answer stretched to the end had left the machine 0.4 GB.
  g_limit.store(before + (available - margin) / 2, std::memory_order_relaxed);
}

uint64_t left_bytes() { return available_with(g_reserved.load(std::memory_order_relaxed)); }

void release(size_t bytes) { g_reserved.fetch_sub(bytes, std::memory_order_relaxed); }

uint64_t reserved_bytes() { return g_reserved.load(std::memory_order_relaxed); }

uint64_t peak_reserved_bytes() { return g_peak.load(std::memory_order_relaxed); }

void reset_peak() { g_peak.store(g_reserved.load(std::memory_order_relaxed), std::memory_order_relaxed); }

void set_available_for_testing(uint64_t bytes) {
  g_pretend_base.store(g_reserved.load());
  g_pretend_bytes.store(bytes);
  g_limit.store(0);  // ask again at the next block
}

}  // namespace shrink::memory_budget
