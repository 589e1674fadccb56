// Small helpers for reading tokenizer.json components with errors that name the component and field.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/error.h"

namespace kiln::tok {

inline std::string type_of(const nlohmann::json& j, const char* what) {
  if (!j.is_object()) fail("{} must be a JSON object, got {}", what, j.type_name());
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) fail("{} has no \"type\" field", what);
  return it->get<std::string>();
}

template <typename T>
T field_or(const nlohmann::json& j, const char* key, T dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer field \"{}\" has the wrong type ({})", key, it->type_name());
  }
}

template <typename T>
T field(const nlohmann::json& j, const char* key, const char* what) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) fail("{} has no \"{}\" field", what, key);
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception& e) {
    fail("{} field \"{}\" has the wrong type ({})", what, key, it->type_name());
  }
}

inline std::optional<std::string> opt_string(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) fail("tokenizer field \"{}\" must be a string, got {}", key, it->type_name());
  return it->get<std::string>();
}

// A {"String": s} or {"Regex": r} pattern. Returns the text; sets is_regex.
inline std::string read_pattern(const nlohmann::json& j, const char* what, bool& is_regex) {
  if (j.is_object()) {
    if (auto it = j.find("String"); it != j.end() && it->is_string()) {
      is_regex = false;
      return it->get<std::string>();
    }
    if (auto it = j.find("Regex"); it != j.end() && it->is_string()) {
      is_regex = true;
      return it->get<std::string>();
    }
  }
  fail("{} pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {}", what, j.dump());
}

}  // namespace kiln::tok
