// Reading numbers out of JSON values as they were written: shared by the request parsers (kiln run's JSONL
// requests, the server's OpenAI requests), which must refuse what nlohmann's get<T> would convert silently.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "io/json_file.h"

namespace kiln {

// A value quoted in an error message: its JSON text, cut short (a request may be megabytes long).
inline std::string brief_json(const nlohmann::json& v) {
  std::string s = dump_json(v);
  return s.size() <= 60 ? s : s.substr(0, 57) + "...";
}

// An integer JSON value as T when it is one and T holds it (nlohmann's get<T> would take 2.5 as 2, wrap
// 99999999999 into an int32 and -1 into 2^64 - 1).
template <typename T>
bool json_as_integer(const nlohmann::json& v, T* out) {
  using L = std::numeric_limits<T>;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(L::max())) return false;
    *out = T(u);
    return true;
  }
  if (!v.is_number_integer()) return false;
  const int64_t i = v.get<int64_t>();
  if (i < 0 && std::is_unsigned_v<T>) return false;
  if constexpr (std::is_signed_v<T>)
    if (i < int64_t(L::min()) || i > int64_t(L::max())) return false;
  *out = T(i);
  return true;
}

// A number JSON value as float when it is one within float's range (an integer counts too).
inline bool json_as_float(const nlohmann::json& v, float* out) {
  if (!v.is_number() || std::fabs(v.get<double>()) > double(std::numeric_limits<float>::max())) return false;
  *out = float(v.get<double>());
  return true;
}

}  // namespace kiln
