// shrink::Error and its kinds: every failure says what happened, where, and what to do about it.
// The CLI maps them to one line on stderr and a non-zero exit code.
#pragma once
#include <stdexcept>
#include <string>

namespace shrink {

class Error : public std::runtime_error {
 public:
  // what: the problem; where: file, tensor, option...; hint: what the user can do about it.
  Error(const std::string& what, const std::string& where = {}, const std::string& hint = {});
  const std::string& problem() const { return problem_; }
  const std::string& location() const { return location_; }
  const std::string& hint() const { return hint_; }

 private:
  std::string problem_, location_, hint_;
};

// A file whose bytes do not follow its format (truncated, corrupt, lying sizes or offsets).
class FormatError : public Error {
  using Error::Error;
};
// The operating system refused: missing file, permission, disk full.
class IoError : public Error {
  using Error::Error;
};
// The caller asked for something invalid: bad option value, wrong shape, unknown name.
class UsageError : public Error {
  using Error::Error;
};
// Valid input that this version of shrink does not handle (yet).
class UnsupportedError : public Error {
  using Error::Error;
};

// The user stopped the work (Ctrl-C); what was committed before stays valid.
class InterruptedError : public Error {
  using Error::Error;
};

}  // namespace shrink
