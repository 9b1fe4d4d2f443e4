// Composes an Error's one-line message: "where: what (hint)".
#include "shrink/core/error.h"

namespace shrink {
namespace {
std::string compose(const std::string& what, const std::string& where, const std::string& hint) {
  std::string message = where.empty() ? what : where + ": " + what;
  if (!hint.empty()) message += " (" + hint + ")";
  return message;
}
}  // namespace

Error::Error(const std::string& what, const std::string& where, const std::string& hint)
    : std::runtime_error(compose(what, where, hint)), problem_(what), location_(where), hint_(hint) {}

}  // namespace shrink
