// The environment switches that turn a speed-up off so that its gain can be measured with the
// same binary (SHRINK_HUGE_PAGES, SHRINK_DECODE_TEAM, SHRINK_TEAM_PREFETCH, SHRINK_DECODE_FUSE,
// SHRINK_INT4_ROW_BLOCKS):
// a switch is off when its variable is "0", on otherwise (unset included).
#pragma once
#include <cstdlib>
#include <cstring>

namespace shrink {

inline bool switched_on(const char* variable) {
  const char* value = std::getenv(variable);
  return !(value && std::strcmp(value, "0") == 0);
}

}  // namespace shrink
