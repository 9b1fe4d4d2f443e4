// What a decoded token's products can read at best: 60 MB read as plain loads in chunks of one
// size, one chunk after another, each split in two halves between the two threads of a
// run_as_team team with a join after it (as a token's 120 dependent int4 products are, ~0.5 MB
// each for SmolLM2), against the chunk size, beside the DRAM probe (`shrink bench bandwidth`).
// Each round reads one of two 64 MB buffers (alternating, so that no round finds the last one's
// bytes in a 32 MB last-level cache), the weights' 2 MB pages as the decode layouts have them.
// Usage: bench_chunked_read [rounds]
#include <fmt/format.h>
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "shrink/core/parallel.h"
#include "shrink/eval/kernel_benchmarks.h"
#include "shrink/kernels/cpu.h"

namespace {

// Sums [p, p + n) as 32-bit lanes, four 64-byte loads a step (one stream, as the probe reads).
__attribute__((target("avx512f"))) void read_avx512(const char* p, size_t n) {
  __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    a = _mm512_add_epi32(a, _mm512_load_si512(p + i));
    b = _mm512_add_epi32(b, _mm512_load_si512(p + i + 64));
    c = _mm512_add_epi32(c, _mm512_load_si512(p + i + 128));
    d = _mm512_add_epi32(d, _mm512_load_si512(p + i + 192));
  }
  const __m512i sum = _mm512_add_epi32(_mm512_add_epi32(a, b), _mm512_add_epi32(c, d));
  asm volatile("" ::"v"(sum));  // the loads are the point: keep them
}

__attribute__((target("avx2"))) void read_avx2(const char* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a = _mm256_add_epi32(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi32(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    c = _mm256_add_epi32(c, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    d = _mm256_add_epi32(d, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d));
  asm volatile("" ::"x"(sum));
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 12;
  const shrink::CpuFeatures& cpu = shrink::cpu_features();
  if (!(cpu.avx2 && cpu.os_avx)) {
    fmt::print(stderr, "bench_chunked_read needs AVX2\n");
    return 2;
  }
  const auto read = cpu.avx512f && cpu.os_avx512 ? read_avx512 : read_avx2;
  constexpr size_t kTotal = size_t(60) << 20, kBuffer = size_t(64) << 20, kPage = size_t(2) << 20;
  std::unique_ptr<char, decltype(&std::free)> buffers[2] = {{nullptr, std::free}, {nullptr, std::free}};
  for (auto& b : buffers) {
    b.reset(static_cast<char*>(std::aligned_alloc(kPage, kBuffer)));
    if (!b) return 1;
    madvise(b.get(), kBuffer, MADV_HUGEPAGE);
    std::memset(b.get(), 1, kBuffer);
  }
  fmt::print("DRAM probe before: {:.1f} GB/s\n", shrink::measure_read_bandwidth(size_t(1) << 30) / 1e9);
  fmt::print("{:>10}  {:>18}  {:>9}  {:>9}\n", "chunk", "median GB/s", "min", "max");
  for (const size_t chunk : {size_t(64) << 10, size_t(256) << 10, size_t(512) << 10, size_t(1) << 20, size_t(2) << 20,
                             size_t(8) << 20, size_t(30) << 20}) {
    std::vector<double> rates;
    for (int round = 0; round < rounds; ++round) {
      const char* base = buffers[round % 2].get();
      double seconds = 0;
      shrink::run_as_team([&] {
        const auto start = std::chrono::steady_clock::now();
        for (size_t offset = 0; offset + chunk <= kTotal; offset += chunk)
          shrink::parallel_for(0, 2, 1, [&](int64_t lo, int64_t hi) {
            for (int64_t half = lo; half < hi; ++half) read(base + offset + size_t(half) * (chunk / 2), chunk / 2);
          });
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      });
      rates.push_back(double(kTotal / chunk * chunk) / seconds / 1e9);
    }
    std::sort(rates.begin(), rates.end());
    fmt::print("{:>7} KB  {:>18.1f}  {:>9.1f}  {:>9.1f}\n", chunk >> 10, rates[rates.size() / 2], rates.front(),
               rates.back());
  }
  fmt::print("DRAM probe after: {:.1f} GB/s\n", shrink::measure_read_bandwidth(size_t(1) << 30) / 1e9);
}
