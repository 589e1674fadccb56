// Reading and writing JSON files with errors that name the file.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace kiln {

nlohmann::json read_json_file(const std::string& path);               // throws naming the file
void write_json_file(const std::string& path, const nlohmann::json& j);  // writes PATH.tmp, then renames
std::string read_text_file(const std::string& path);

}  // namespace kiln
