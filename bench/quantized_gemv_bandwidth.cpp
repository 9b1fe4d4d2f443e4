// Decode-time matmuls against the memory-bandwidth limit, in one run: the machine's read
// bandwidth (the threads summing a 1 GiB buffer with AVX2 loads), then int4 (group 32 and 128) and int8 GEMV with
// weights rotated through copies larger than the last-level cache (cold, as in decoding a model
// much larger than the cache), reported as GB/s of weight bytes and % of the measured read
// bandwidth; and int4 prefill (M = 512) in GOP/s. Medians of 5.
//   build/release/bench/bench_quantized_gemv [threads]
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "shrink/core/half.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/kernels/registry.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median_seconds(int calls, const std::function<void(int)>& call) {
  call(0);
  std::vector<double> times;
  for (int rep = 0; rep < 5; ++rep) {
    const double start = now();
    for (int c = 0; c < calls; ++c) call(c);
    times.push_back((now() - start) / calls);
  }
  std::sort(times.begin(), times.end());
  return times[2];
}

// Sum of a range of doubles with eight independent accumulators, so the loads, not the adds,
// set the pace. AVX2 where the CPU has it.
__attribute__((target("avx2"))) double sum_avx2(const double* p, size_t n) {
  __m256d s[8];
  for (auto& v : s) v = _mm256_setzero_pd();
  for (size_t i = 0; i + 32 <= n; i += 32)
    for (int j = 0; j < 8; ++j) s[j] = _mm256_add_pd(s[j], _mm256_load_pd(p + i + 4 * j));
  for (int j = 1; j < 8; ++j) s[0] = _mm256_add_pd(s[0], s[j]);
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, s[0]);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

double sum_plain(const double* p, size_t n) {
  double s[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += p[i + size_t(j)];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

// Read bandwidth over 1 GiB (2 MiB-aligned, transparent huge pages asked for, first touched by the
// threads that later read it), median of 5 passes.
double read_bandwidth() {
  const size_t bytes = size_t(1) << 30, n = bytes / 8;
  auto* buffer = static_cast<double*>(std::aligned_alloc(size_t(2) << 20, bytes));
  madvise(buffer, bytes, MADV_HUGEPAGE);
  const int64_t chunk = int64_t(1) << 21;  // doubles per task: 16 MiB
  shrink::parallel_for(0, int64_t(n) / chunk, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) std::fill(buffer + c * chunk, buffer + (c + 1) * chunk, 1.0);
  });
  const bool avx2 = shrink::cpu_features().avx2;
  volatile double sink = 0;
  const double seconds = median_seconds(1, [&](int) {
    std::vector<double> partial(64, 0.0);
    shrink::parallel_for(0, int64_t(n) / chunk, 1, [&](int64_t lo, int64_t hi) {
      double s = 0;
      for (int64_t c = lo; c < hi; ++c) s += avx2 ? sum_avx2(buffer + c * chunk, size_t(chunk)) : sum_plain(buffer + c * chunk, size_t(chunk));
      partial[size_t(lo % 64)] += s;
    });
    sink = sink + partial[0];
  });
  std::free(buffer);
  return double(bytes) / seconds / 1e9;
}

constexpr size_t kColdBytes = size_t(256) << 20;  // rotate through this much weight data

struct Int4Copies {
  std::vector<std::vector<uint8_t>> nibbles;
  std::vector<std::vector<uint16_t>> scales, mins;
  int64_t n, k, group;
  size_t bytes_per_copy() const { return size_t(n * k / 2) + 4 * size_t(n * k / group); }
};

Int4Copies make_int4(int64_t n, int64_t k, int64_t group, bool cold) {
  Int4Copies w{{}, {}, {}, n, k, group};
  const size_t copies = cold ? std::max<size_t>(2, kColdBytes / w.bytes_per_copy()) : 1;
  shrink::Rng rng(3);
  for (size_t c = 0; c < copies; ++c) {
    w.nibbles.emplace_back(size_t(n * k / 2));
    for (auto& b : w.nibbles.back()) b = uint8_t(rng.next_u32());
    w.scales.emplace_back(size_t(n * k / group), shrink::f32_to_f16(0.01f));
    w.mins.emplace_back(size_t(n * k / group), shrink::f32_to_f16(-0.08f));
  }
  return w;
}

void int4_gemv(int64_t n, int64_t k, int64_t group, bool cold, double bandwidth) {
  const auto& table = shrink::kernels();
  const Int4Copies w = make_int4(n, k, group, cold);
  std::vector<float> x(static_cast<size_t>(k), 0.5f), out(static_cast<size_t>(n)), a_scale(1);
  std::vector<int8_t> q(static_cast<size_t>(k));
  std::vector<int32_t> sums(static_cast<size_t>(k / group));
  const int copies = int(w.nibbles.size());
  const double seconds = median_seconds(std::max(copies, 50), [&](int c) {
    const shrink::Int4Weights weights{w.nibbles[size_t(c % copies)].data(), w.scales[size_t(c % copies)].data(),
                                      w.mins[size_t(c % copies)].data(), n, k, group};
    table.quantize_rows_s8(x.data(), 1, k, group, q.data(), a_scale.data(), sums.data());
    table.gemm_q4s8(1, q.data(), a_scale.data(), sums.data(), weights, nullptr, out.data(), n);
  });
  const double gbs = double(w.bytes_per_copy()) / seconds / 1e9;
  std::printf("  int4 g%-4lld GEMV %5lld x %-5lld %-4s %9.1f us %8.1f GB/s %7.1f%% of read bandwidth\n", (long long)group,
              (long long)n, (long long)k, cold ? "cold" : "hot", seconds * 1e6, gbs, 100 * gbs / bandwidth);
}

void int8_gemv(int64_t n, int64_t k, bool cold, double bandwidth) {
  const auto& table = shrink::kernels();
  const size_t bytes = shrink::int8_packed_bytes(n, k) + 8 * size_t(n);
  const size_t copies = cold ? std::max<size_t>(2, kColdBytes / bytes) : 1;
  std::vector<std::vector<int8_t>> packed(copies, std::vector<int8_t>(shrink::int8_packed_bytes(n, k), 3));
  std::vector<int32_t> sums(static_cast<size_t>(n), 3 * int32_t(k));
  std::vector<float> b_scale(static_cast<size_t>(n), 0.01f), x(static_cast<size_t>(k), 0.5f), out(static_cast<size_t>(n)), a_scale(1);
  const int64_t lda = shrink::int8_padded_k(k);
  std::vector<uint8_t> a(static_cast<size_t>(lda));
  std::vector<int32_t> a_zero(1);
  shrink::Int8Epilogue e;
  e.a_scale = a_scale.data();
  e.a_zero = a_zero.data();
  e.b_scale = b_scale.data();
  e.b_col_sums = sums.data();
  e.out_f32 = out.data();
  e.ldo = n;
  const double seconds = median_seconds(std::max(int(copies), 50), [&](int c) {
    table.quantize_rows_u8(x.data(), 1, k, k, a.data(), lda, a_scale.data(), a_zero.data());
    table.gemm_u8s8(1, n, k, a.data(), lda, packed[size_t(c) % copies].data(), e);
  });
  const double gbs = double(bytes) / seconds / 1e9;
  std::printf("  int8 per-channel GEMV %5lld x %-5lld %-4s %9.1f us %8.1f GB/s %7.1f%% of read bandwidth\n", (long long)n,
              (long long)k, cold ? "cold" : "hot", seconds * 1e6, gbs, 100 * gbs / bandwidth);
}

void int4_prefill(int64_t m, int64_t n, int64_t k, int64_t group) {
  const auto& table = shrink::kernels();
  const Int4Copies w = make_int4(n, k, group, false);
  const shrink::Int4Weights weights{w.nibbles[0].data(), w.scales[0].data(), w.mins[0].data(), n, k, group};
  std::vector<float> x(static_cast<size_t>(m * k), 0.25f), out(static_cast<size_t>(m * n)), a_scale(static_cast<size_t>(m));
  std::vector<int8_t> q(static_cast<size_t>(m * k));
  std::vector<int32_t> sums(static_cast<size_t>(m * k / group));
  const double seconds = median_seconds(1, [&](int) {
    table.quantize_rows_s8(x.data(), m, k, group, q.data(), a_scale.data(), sums.data());
    table.gemm_q4s8(m, q.data(), a_scale.data(), sums.data(), weights, nullptr, out.data(), n);
  });
  std::printf("  int4 g%-4lld prefill M=%lld %lld x %lld %9.1f ms %8.1f GOP/s\n", (long long)group, (long long)m,
              (long long)n, (long long)k, seconds * 1e3, 2.0 * double(m * n * k) / seconds / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : shrink::num_threads();
  shrink::set_num_threads(threads);
  const double bandwidth = read_bandwidth();
  std::printf("threads %d | ISA %s | read bandwidth %.1f GB/s (sum over 1 GiB, median of 5)\n", threads,
              std::string(shrink::isa_name(shrink::active_isa())).c_str(), bandwidth);
  for (bool cold : {true, false}) {
    int4_gemv(4096, 4096, 32, cold, bandwidth);
    int4_gemv(4096, 4096, 128, cold, bandwidth);
    int4_gemv(1536, 576, 32, cold, bandwidth);
    int4_gemv(576, 1536, 32, cold, bandwidth);
    int8_gemv(4096, 4096, cold, bandwidth);
  }
  int4_prefill(512, 4096, 4096, 128);
  return 0;
}
