// Helpers shared by the tests: fixture paths, scratch folders, files as bytes, running the CLI.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace shrink::testing {

std::string fixture_path(const std::string& relative);  // tests/fixtures/<relative>
// The asset cache ($SHRINK_CACHE or ~/.cache/shrink).
std::string asset_path(const std::string& relative);
// True when SHRINK_REQUIRE_ASSETS=1: a missing real asset is then a failure, not a skip.
bool assets_required();
// Whether the fetched asset exists; when SHRINK_REQUIRE_ASSETS=1 a missing one is also a test failure.
bool asset_present(const std::string& path);

// A fresh folder removed (with its contents) when the object goes away.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> list() const;  // names of the entries, hidden ones included

 private:
  std::string path_;
};

std::vector<std::byte> read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::vector<std::byte>& bytes);

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs the shrink binary with these arguments (shell-quoted for you) and extra environment.
CommandResult run_shrink(const std::vector<std::string>& args, const std::string& environment = "");

}  // namespace shrink::testing
