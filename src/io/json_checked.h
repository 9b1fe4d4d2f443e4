// JSON in and out of files, checked. Out: JSON must be UTF-8, and names and metadata come from
// users and imported files (a GGUF's strings are bytes), so json_text refuses with a UsageError
// instead of letting nlohmann's type_error escape. In: nlohmann converts a float to an integer
// with a plain cast (undefined beyond int64's range), so integers read from files go through
// json_integer. Both found by fuzzing shrink's model files and stored tokenizers.
#pragma once
#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "shrink/core/error.h"

namespace shrink::io {

template <class Json>
std::string json_text(const Json& j, const std::string& what, const std::string& path) {
  try {
    return j.dump();
  } catch (const nlohmann::json::type_error& e) {
    throw UsageError(what + " holds text that is not UTF-8 (" + e.what() + ")", path);
  }
}

// `value` as an int64 (FormatError naming `what` when it is not an integer that fits).
inline int64_t json_integer(const nlohmann::json& value, const std::string& what, const std::string& where = "") {
  if (value.is_number_unsigned() && value.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()))
    return int64_t(value.get<uint64_t>());
  if (value.is_number_integer() && !value.is_number_unsigned()) return value.get<int64_t>();
  throw FormatError(fmt::format("{} must be an integer, found {}", what,
                                value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).substr(0, 40)),
                    where);
}

}  // namespace shrink::io
