// Kernel measurements taken side by side in one run, each reported against a baseline or a
// physical limit measured in the same run (the read bandwidth, shrink's fp32 GEMM): what
// `shrink bench kernels` prints. Times are medians of 5 repetitions.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace shrink {

// The median of some measurements (the upper middle one of an even count).
double median(std::vector<double> values);

// Median seconds per call over 5 repetitions of `calls` calls (after one warm-up call);
// call(i) receives the call's index, for rotating through buffers.
double median_seconds(int calls, const std::function<void(int)>& call);

// The read bandwidth at a moment of a run: a buffer of `bytes` (huge pages asked for, first
// touched by the threads that read it; choose it well above the last-level cache) filled once,
// then read with all threads on each measure(), which returns bytes per second (median of 5
// passes). A shared host's bandwidth moves minute to minute, so a kernel's fraction of it is best
// taken against a measurement made just before the kernel's own (see run_kernel_benchmarks).
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(size_t bytes = size_t(1) << 30);
  ~ReadBandwidthProbe();
  ReadBandwidthProbe(const ReadBandwidthProbe&) = delete;
  ReadBandwidthProbe& operator=(const ReadBandwidthProbe&) = delete;
  double measure() const;
  size_t bytes() const { return bytes_; }  // the buffer's size: `bytes` in whole 16 MB chunks, at least 32 MB

 private:
  double* buffer_ = nullptr;
  size_t bytes_ = 0;
};

// One measurement with a fresh probe.
double measure_read_bandwidth(size_t bytes = size_t(1) << 30);

// The int8 multiply-add ceiling of AVX512-VNNI in operations per second (2 a multiply-add), with
// every thread of the pool running independent vpdpbusd chains (median of 5 passes of ~14 ms);
// 0 where the active ISA lacks VNNI. AMX's tile instructions go past it (the int8 GEMM there is
// held to oneDNN instead).
double measure_vnni_dot_peak();

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
  double read_bandwidth = 0;  // bytes/s, the first measurement of the run
  std::vector<KernelMeasurement> rows;
};

// quick: smaller shapes and buffers, for a first look (or a CI smoke run).
KernelReport run_kernel_benchmarks(bool quick, const std::function<void(const std::string&)>& progress = {});

}  // namespace shrink
