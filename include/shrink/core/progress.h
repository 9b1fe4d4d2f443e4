// Progress of long work on stderr: "what 12/60  elapsed 31s  ETA 2m04s  extra". On a terminal
// one line rewritten in place; otherwise a line at every tenth of the work (logs stay short).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace shrink {

std::string format_duration(double seconds);  // "47s", "3m05s"

class ProgressLine {
 public:
  ProgressLine(std::string what, int64_t total, bool quiet = false);
  void update(int64_t done, const std::string& extra = {});
  void finish();  // ends the terminal line
  double elapsed() const;

 private:
  std::string what_;
  int64_t total_;
  bool quiet_, live_;
  int64_t last_tenth_ = -1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace shrink
