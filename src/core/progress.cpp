#include "shrink/core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace shrink {

std::string format_duration(double seconds) {
  int s = int(seconds + 0.5);
  return s >= 60 ? fmt::format("{}m{:02d}s", s / 60, s % 60) : fmt::format("{}s", s);
}

ProgressLine::ProgressLine(std::string what, int64_t total, bool quiet)
    : what_(std::move(what)), total_(total), quiet_(quiet), live_(!quiet && isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()) {}

double ProgressLine::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressLine::update(int64_t done, const std::string& extra) {
  if (quiet_ || total_ <= 0) return;
  int64_t tenth = done * 10 / total_;
  if (!live_ && tenth == last_tenth_) return;
  last_tenth_ = tenth;
  double seconds = elapsed();
  double eta = done > 0 ? seconds / double(done) * double(total_ - done) : 0;
  std::string line = fmt::format("{} {}/{}  elapsed {}  ETA {}{}{}", what_, done, total_, format_duration(seconds),
                                 format_duration(eta), extra.empty() ? "" : "  ", extra);
  std::fprintf(stderr, live_ ? "\r%s\033[K" : "%s\n", line.c_str());
}

void ProgressLine::finish() {
  if (live_) std::fprintf(stderr, "\n");
}

}  // namespace shrink
