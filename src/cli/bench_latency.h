// shrink bench latency: the options and the run (bench_latency.cpp); bench_command.cpp parses.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace shrink::cli {

struct LatencyCliOptions {
  std::vector<std::string> models;
  std::vector<int64_t> batches = {1, 64};
  int64_t sequence = 128;
  int rounds = 7;
  bool profile = false, json = false, quiet = false;
};

void run_bench_latency(const LatencyCliOptions& options);

}  // namespace shrink::cli
