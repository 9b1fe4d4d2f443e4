// Median timing, the machine's read bandwidth, and its int8 multiply-add ceiling.
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <new>
#include <vector>

#include "kernels/kernel_variants.h"
#include "shrink/core/parallel.h"
#include "shrink/eval/kernel_benchmarks.h"
#include "shrink/kernels/cpu.h"

namespace shrink {
namespace {

constexpr size_t kChunkDoubles = size_t(1) << 21, kChunkBytes = 8 * kChunkDoubles;  // 16 MiB per task

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Two sequential streams (the halves of [p, p + n)), four independent accumulators each, so the
// loads rather than the adds set the pace. Two streams per core read 15% faster than one on the
// AMD host (48.7 vs 42.0 GB/s on 2 threads; four streams 49.6), as the GEMV kernels that walk two
// panel streams per thread found: the limit is what the best of these patterns reaches. No
// software prefetch: in this bare loop it cost a quarter of the rate (42.0 -> 32.1 GB/s). Where
// the CPU has AVX-512 the loads are 64 bytes wide: on the Sapphire Rapids host 32-byte loads
// reached only 80-90% of it (21-24 vs 26-27 GB/s on 2 threads in three runs, 27-29 vs 30-31 in a
// fourth; one or two streams alike, side by side in one process; the workplace's stream.cpp,
// AVX-512, read 26-30), and the decode kernels load 64 bytes at a time there.
__attribute__((target("avx2"))) double sum_avx2(const double* p, size_t n) {
  __m256d s[2][4];
  for (auto& stream : s)
    for (auto& v : stream) v = _mm256_setzero_pd();
  const size_t half = n / 2;
  for (size_t i = 0; i + 16 <= half; i += 16)
    for (int stream = 0; stream < 2; ++stream)
      for (int j = 0; j < 4; ++j)
        s[stream][j] = _mm256_add_pd(s[stream][j], _mm256_load_pd(p + stream * half + i + 4 * j));
  __m256d total = _mm256_setzero_pd();
  for (auto& stream : s)
    for (auto& v : stream) total = _mm256_add_pd(total, v);
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, total);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

__attribute__((target("avx512f"))) double sum_avx512(const double* p, size_t n) {
  __m512d s[2][4];
  for (auto& stream : s)
    for (auto& v : stream) v = _mm512_setzero_pd();
  const size_t half = n / 2;
  for (size_t i = 0; i + 32 <= half; i += 32)
    for (int stream = 0; stream < 2; ++stream)
      for (int j = 0; j < 4; ++j)
        s[stream][j] = _mm512_add_pd(s[stream][j], _mm512_load_pd(p + stream * half + i + 8 * j));
  __m512d total = _mm512_setzero_pd();
  for (auto& stream : s)
    for (auto& v : stream) total = _mm512_add_pd(total, v);
  alignas(64) double lanes[8];  // (_mm512_reduce_add_pd trips GCC 12's -Wuninitialized)
  _mm512_store_pd(lanes, total);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

double sum_plain(const double* p, size_t n) {
  double s[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (size_t j = 0; j < 8; ++j) s[j] += p[i + j];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

}  // namespace

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

double median_seconds(int calls, const std::function<void(int)>& call) {
  call(0);
  std::vector<double> times;
  for (int rep = 0; rep < 5; ++rep) {
    const double start = now();
    for (int c = 0; c < calls; ++c) call(c);
    times.push_back((now() - start) / calls);
  }
  return median(std::move(times));
}

ReadBandwidthProbe::ReadBandwidthProbe(size_t bytes) {
  bytes_ = std::max<size_t>(bytes, size_t(32) << 20) / (size_t(16) << 20) * (size_t(16) << 20);  // whole chunks
  buffer_ = static_cast<double*>(std::aligned_alloc(size_t(2) << 20, bytes_));
  if (!buffer_) throw std::bad_alloc();
  madvise(buffer_, bytes_, MADV_HUGEPAGE);
  parallel_for(0, int64_t(bytes_ / kChunkBytes), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) std::fill(buffer_ + c * kChunkDoubles, buffer_ + (c + 1) * kChunkDoubles, 1.0);
  });
}

ReadBandwidthProbe::~ReadBandwidthProbe() { std::free(buffer_); }

double ReadBandwidthProbe::measure() const {
  const CpuFeatures& cpu = cpu_features();
  const auto sum = cpu.avx512f && cpu.os_avx512 ? sum_avx512 : cpu.avx2 && cpu.os_avx ? sum_avx2 : sum_plain;
  volatile double sink = 0;
  const double seconds = median_seconds(1, [&](int) {
    std::vector<double> partial(64, 0.0);
    parallel_for(0, int64_t(bytes_ / kChunkBytes), 1, [&](int64_t lo, int64_t hi) {
      double s = 0;
      for (int64_t c = lo; c < hi; ++c)
        s += sum(buffer_ + c * kChunkDoubles, kChunkDoubles);
      partial[size_t(lo % 64)] += s;
    });
    sink = sink + partial[0];
  });
  return double(bytes_) / seconds;
}

double measure_read_bandwidth(size_t bytes) { return ReadBandwidthProbe(bytes).measure(); }

double measure_vnni_dot_peak() {
  if (active_isa() < Isa::vnni) return 0;
  // 2^21 rounds of 24 instructions: ~14 ms a pass at one instruction a cycle and 3.7 GHz.
  constexpr int64_t kRounds = int64_t(1) << 21;
  const int64_t threads = num_threads();
  const double seconds = median_seconds(1, [&](int) {
    parallel_for(0, threads, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) kernel_variants::dot_peak__vnni(kRounds);
    });
  });
  return double(threads) * double(kRounds) * kernel_variants::kDotPeakChains * 64 * 2 / seconds;
}

}  // namespace shrink
