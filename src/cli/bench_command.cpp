// shrink bench kernels: the kernel measurements of this machine, each against a baseline or a
// limit measured in the same run. shrink bench bandwidth: the read bandwidth alone (about a
// second), for scripts that take it beside each of their own runs (bench/llm_decode_table.sh).
// shrink bench latency MODEL...: models' forward passes side by side (bench_latency.cpp).
#include <fmt/format.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli/bench_latency.h"
#include "cli/commands.h"
#include "shrink/core/error.h"
#include "shrink/core/parallel.h"
#include "shrink/eval/kernel_benchmarks.h"

namespace shrink::cli {
namespace {

struct BenchOptions {
  std::string what;
  bool quick = false, json = false, quiet = false;
  int64_t buffer_mb = 1024;
  LatencyCliOptions latency;
};

std::string human_time(double seconds) {
  if (seconds >= 1) return fmt::format("{:.2f} s", seconds);
  if (seconds >= 1e-3) return fmt::format("{:.2f} ms", seconds * 1e3);
  return fmt::format("{:.1f} us", seconds * 1e6);
}

}  // namespace

void setup_bench(CLI::App& sub) {
  auto options = std::make_shared<BenchOptions>();
  sub.add_option("WHAT", options->what,
                 "What to measure: kernels; bandwidth (the read bandwidth alone); latency (the forward pass of "
                 "the MODEL files side by side)")
      ->required()
      ->check(CLI::IsMember({"kernels", "bandwidth", "latency"}));
  sub.add_option("MODEL", options->latency.models,
                 "latency: model files (shrink models, ONNX, GGUF or Hugging Face folders); the first is the one the "
                 "others are compared to");
  sub.add_option("--batch", options->latency.batches, "latency: batch sizes, comma-separated (default 1,64)")
      ->delimiter(',')
      ->check(kPositive);
  sub.add_option("--seq-len", options->latency.sequence,
                 "latency: tokens per sequence for models that read sequences of unknown length (default 128)")
      ->check(kPositive);
  sub.add_option("--rounds", options->latency.rounds,
                 "latency: rounds, each running every model for 50 ms at every batch (default 7)")
      ->check(kPositive);
  sub.add_flag("--profile", options->latency.profile, "latency: also the time by node kind at the first batch");
  sub.add_flag("--quick", options->quick, "Smaller shapes and probe (the cold-weight rows still cycle through 3x the last-level cache, which sets the time on machines with a large one: ~80 s on a 300 MB L3)");
  sub.add_option("--buffer-mb", options->buffer_mb,
                 "bandwidth: the probe's buffer in MB (rounded to whole 16 MB, at least 32; default 1024). One "
                 "above the last-level cache measures DRAM; one the size of a working set that the cache can "
                 "hold (a small model's weights) measures the limit for re-reading that set")
      ->check(CLI::Range(int64_t(1), int64_t(65536)));
  sub.add_flag("--json", options->json, "Print the measurements as JSON");
  sub.add_flag("--quiet", options->quiet, "No progress on stderr");
  sub.callback([options] {
    if (options->what != "latency" && !options->latency.models.empty())
      throw UsageError("model files are measured by 'bench latency'", "MODEL");
    if (options->what == "latency") {
      options->latency.json = options->json;
      options->latency.quiet = options->quiet;
      return run_bench_latency(options->latency);
    }
    if (options->what == "bandwidth") {
      // The probe writes every byte of its buffer: refuse more than half of this machine's memory.
      const double memory = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
      if (memory > 0 && double(options->buffer_mb) * double(1 << 20) > memory / 2)
        throw UsageError(fmt::format("{} MB is more than half of this machine's {:.0f} MB of memory",
                                     options->buffer_mb, memory / double(1 << 20)),
                         "--buffer-mb");
      const ReadBandwidthProbe probe(size_t(options->buffer_mb) << 20);
      const double bandwidth = probe.measure();
      if (options->json)
        print_json(nlohmann::ordered_json{{"threads", num_threads()}, {"buffer_bytes", probe.bytes()},
                                          {"read_bandwidth_bytes_per_second", bandwidth}});
      else
        fmt::print("read bandwidth {:.1f} GB/s ({} threads, a {} MB buffer, the median of 5 passes)\n", bandwidth / 1e9,
                   num_threads(), probe.bytes() >> 20);
      return;
    }
    const bool show_progress = !options->quiet && isatty(STDERR_FILENO);
    const KernelReport report = run_kernel_benchmarks(options->quick, [&](const std::string& step) {
      if (show_progress) fmt::print(stderr, "\r\33[2K[bench] {}", step);
    });
    if (show_progress) fmt::print(stderr, "\r\33[2K");
    if (options->json) {
      nlohmann::ordered_json rows = nlohmann::ordered_json::array();
      for (const auto& r : report.rows)
        rows.push_back({{"kernel", r.name}, {"shape", r.shape}, {"seconds", r.seconds}, {"rate", r.rate}, {"unit", r.unit},
                        {"ratio", r.ratio}, {"versus", r.versus}});
      const nlohmann::ordered_json out = {{"threads", report.threads}, {"isa", report.isa},
                                          {"read_bandwidth_bytes_per_second", report.read_bandwidth}, {"rows", rows}};
      print_json(out);
      return;
    }
    fmt::print("threads {} | ISA {} | read bandwidth {:.1f} GB/s (measured now) | medians of 5\n"
               "(each fraction of the read bandwidth: the median of 5 rounds of the bandwidth measured, then the kernel)\n\n",
               report.threads, report.isa, report.read_bandwidth / 1e9);
    fmt::print("  {:<42} {:<16} {:>10} {:>18}   {}\n", "kernel", "shape", "time", "rate", "against");
    for (const auto& r : report.rows) {
      std::string against;
      if (r.versus == "read bandwidth") {
        against = fmt::format("{:.0f}% of the read bandwidth", 100 * r.ratio);
      } else if (!r.versus.empty()) {
        against = fmt::format("{:.2f}x {}", r.ratio, r.versus);
      }
      fmt::print("  {:<42} {:<16} {:>10} {:>18}   {}\n", r.name, r.shape, human_time(r.seconds),
                 fmt::format("{:.2f} {}", r.rate, r.unit), against);
    }
  });
}

}  // namespace shrink::cli
