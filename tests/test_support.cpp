// Implementation of the shared test helpers.
#include "shrink/io/datasets.h"
#include "test_support.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace shrink::testing {

std::string fixture_path(const std::string& relative) { return std::string(SHRINK_FIXTURES_DIR) + "/" + relative; }

std::string asset_path(const std::string& relative) {
  return asset_cache_dir() + "/" + relative;
}

bool assets_required() {
  const char* value = std::getenv("SHRINK_REQUIRE_ASSETS");
  return value && std::string(value) == "1";
}

bool asset_present(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) return true;
  if (assets_required()) ADD_FAILURE() << path << " is missing; run tools/fetch_assets.py";
  return false;
}

ScratchDir::ScratchDir() {
  char pattern[] = "/tmp/shrink-test-XXXXXX";
  if (!mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  for (const auto& name : list()) ::unlink((path_ + "/" + name).c_str());
  ::rmdir(path_.c_str());
}

std::vector<std::string> ScratchDir::list() const {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir(path_.c_str())) {
    while (const dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(dir);
  }
  return names;
}

std::vector<std::byte> read_bytes(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw std::runtime_error("cannot read " + path);
  std::vector<char> chars((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

void write_bytes(const std::string& path, const std::vector<std::byte>& bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!stream) throw std::runtime_error("cannot write " + path);
}

namespace {
std::string quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
std::string slurp(const std::string& path) {
  std::ifstream stream(path);
  return {std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>()};
}
}  // namespace

CommandResult run_shrink(const std::vector<std::string>& args, const std::string& environment) {
  ScratchDir scratch;
  std::string command = environment + " " + quote(SHRINK_BINARY);
  for (const auto& arg : args) command += " " + quote(arg);
  command += " > " + scratch.file("out") + " 2> " + scratch.file("err") + " < /dev/null";
  const int status = std::system(command.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = slurp(scratch.file("out"));
  result.err = slurp(scratch.file("err"));
  return result;
}

}  // namespace shrink::testing
