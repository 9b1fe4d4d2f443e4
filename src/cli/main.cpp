// shrink's entry point: global options, the subcommand table, and the mapping of errors to exit
// codes (0 success, 1 the work failed, 2 the command line or a setting is wrong, 3 internal error).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <new>
#include <system_error>

#include "cli/commands.h"
#include "shrink/core/error.h"
#include "shrink/core/parallel.h"

namespace {

int report(const char* kind, const std::string& message, int code) {
  std::fprintf(stderr, "shrink: %s%s\n", kind, message.c_str());
  return code;
}

// A command's --out, checked before any work starts:
// - shrink never writes over its input: --out naming the file or folder it reads (MODEL,
//   --teacher) is refused (the file would have been replaced atomically, but replaced all the same);
// - the folder must exist and be writable, and --out must not name a folder: training, GPTQ or a
//   fine-tuning schedule that ran for an hour and then found its folder missing had lost the hour.
void check_output(const CLI::App& app) {
  namespace fs = std::filesystem;
  for (const CLI::App* sub : app.get_subcommands()) {
    const CLI::Option* out = sub->get_option_no_throw("--out");
    if (!out || out->count() == 0) continue;
    const fs::path path = out->as<std::string>();
    std::error_code error;
    for (const char* name : {"MODEL", "--teacher"}) {
      const CLI::Option* input = sub->get_option_no_throw(name);
      if (input && input->count() > 0 && fs::equivalent(path, input->as<std::string>(), error))
        throw shrink::UsageError(fmt::format("'{}' is the input ({}); shrink never writes over its input, choose another path",
                                             path.string(), name),
                                 "--out");
    }
    if (fs::is_directory(path, error))
      throw shrink::UsageError(fmt::format("'{}' is a folder; --out names the file to write", path.string()), "--out");
    const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
    if (!fs::is_directory(folder, error))
      throw shrink::UsageError(fmt::format("the folder '{}' does not exist", folder.string()), "--out");
    if (::access(folder.c_str(), W_OK | X_OK) != 0)
      throw shrink::UsageError(fmt::format("cannot write into '{}': {}", folder.string(), std::strerror(errno)), "--out");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shrink: make trained neural networks smaller and faster", "shrink"};
  app.set_version_flag("--version", std::string("shrink ") + SHRINK_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  int threads = 0;
  app.add_option("--threads", threads, "Worker threads (default: all cores)")->check(shrink::cli::kNonNegative);
  app.footer(
      "Exit codes: 0 success; 1 the work failed (unreadable or invalid input, I/O error);\n"
      "2 the command line or a setting is wrong; 3 internal error (please report it);\n"
      "130 interrupted (Ctrl-C; files written before stay intact).\n"
      "Run 'shrink COMMAND --help' for a command's options.");
  for (const auto& command : shrink::cli::kCommands) command.setup(*app.add_subcommand(command.name, command.summary));
  app.parse_complete_callback([&] {
    shrink::set_num_threads(threads);
    check_output(app);
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return report("", std::string(e.what()) + " (see 'shrink --help')", 2);
  } catch (const shrink::InterruptedError& e) {
    return report("", e.what(), 130);
  } catch (const shrink::UsageError& e) {
    return report("", e.what(), 2);
  } catch (const shrink::Error& e) {
    return report("error: ", e.what(), 1);
  } catch (const std::bad_alloc&) {
    return report("error: ", "out of memory", 1);
  } catch (const std::exception& e) {
    return report("internal error: ", e.what(), 3);
  }
  return 0;
}
