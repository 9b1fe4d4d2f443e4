// Shared by the libFuzzer targets: a per-process scratch file for readers that take a path, a
// load-and-decode step for language models, and the rule every target checks — a reader either
// succeeds or throws shrink::Error; anything else (a crash, a sanitizer report, another exception
// type, a hang) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "shrink/core/error.h"
#include "shrink/io/llm_import.h"
#include "shrink/nn/decoder.h"

namespace shrink::fuzz {

// A per-process scratch path in /dev/shm (or /tmp) with this extension, the same on every call.
inline std::string scratch_path(const std::string& extension) {
  static const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return dir + "/shrink-fuzz-" + std::to_string(getpid()) + extension;
}

// Writes the input to `path` (a failure is the harness's, not the reader's: trap at once).
inline void write_input(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
}

// Writes the input to scratch_path(extension) and returns that path.
inline std::string scratch_file(const uint8_t* data, size_t size, const std::string& extension) {
  const std::string path = scratch_path(extension);
  write_input(path, data, size);
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

// Loads `path` as a language model and decodes two tokens with it; shrink::Error is a refusal.
inline void load_and_decode_two_tokens(const std::string& path) {
  expect_success_or_error([&] {
    io::LanguageModel model = io::load_language_model(path);
    nn::Decoder decoder(model.graph);
    const int32_t tokens[2] = {0, 1};
    (void)decoder.feed(tokens);
  });
}

}  // namespace shrink::fuzz
