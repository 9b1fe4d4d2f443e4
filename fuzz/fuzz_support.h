// Shared by the libFuzzer targets: a per-process scratch file for readers that take a path, and
// the rule every target checks — a reader either succeeds or throws shrink::Error; anything else
// (a crash, a sanitizer report, another exception type, a hang) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "shrink/core/error.h"

namespace shrink::fuzz {

// A per-process scratch path in /dev/shm (or /tmp) with this extension, the same on every call.
inline std::string scratch_path(const std::string& extension) {
  static const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return dir + "/shrink-fuzz-" + std::to_string(getpid()) + extension;
}

// Writes the input to scratch_path(extension) and returns that path.
inline std::string scratch_file(const uint8_t* data, size_t size, const std::string& extension) {
  const std::string path = scratch_path(extension);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

// Runs `body`; shrink::Error is the expected way to refuse bad input.
template <class Body>
void expect_success_or_error(Body&& body) {
  try {
    body();
  } catch (const Error&) {
  }
}

}  // namespace shrink::fuzz
