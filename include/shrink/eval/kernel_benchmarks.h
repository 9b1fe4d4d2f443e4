// Kernel measurements taken side by side in one run, each reported against a baseline or a
// physical limit measured in the same run (the read bandwidth, shrink's fp32 GEMM): what
// `shrink bench kernels` prints. Times are medians of 5 repetitions.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace shrink {

// Median seconds per call over 5 repetitions of `calls` calls (after one warm-up call);
// call(i) receives the call's index, for rotating through buffers.
double median_seconds(int calls, const std::function<void(int)>& call);

// Bytes per second of reading a buffer of this size with all threads (huge pages asked for, first
// touched by the threads that read it). Choose it well above the last-level cache.
double measure_read_bandwidth(size_t bytes = size_t(1) << 30);

struct KernelMeasurement {
  std::string name;      // "int8 GEMM", "int4 g128 GEMV cold", ...
  std::string shape;     // "1024x1024x1024"
  double seconds = 0;
  double rate = 0;       // in `unit`
  std::string unit;      // "GOP/s", "GB/s", "G values/s"
  double ratio = 0;      // against `versus`
  std::string versus;    // "fp32 GEMM (same shape)", "read bandwidth", ...
};

struct KernelReport {
  int threads = 0;
  std::string isa;
  double read_bandwidth = 0;  // bytes/s
  std::vector<KernelMeasurement> rows;
};

// quick: smaller shapes and buffers, for a first look (or a CI smoke run).
KernelReport run_kernel_benchmarks(bool quick, const std::function<void(const std::string&)>& progress = {});

}  // namespace shrink
