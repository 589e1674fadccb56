// Reading and writing JSON files with errors that name the file.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace kiln {

// Deepest nesting of arrays and objects that parse_json accepts. nlohmann::json's serializer and comparisons
// recurse once per level, so a hostile input of 100,000 brackets would overflow the stack; no file kiln reads
// (configs, tokenizer.json, safetensors headers, request lines) comes near this.
constexpr int kMaxJsonDepth = 256;

// nlohmann::json::parse that refuses nesting deeper than kMaxJsonDepth while parsing (before building it).
// Throws kiln::Error: nlohmann's message for malformed text, or one naming the depth limit.
nlohmann::json parse_json(std::string_view text);

// JSON text that is always valid UTF-8: invalid bytes in strings (a decoded text cut inside a character, an error
// message quoting a bad request line) become U+FFFD, where a plain dump() throws.
std::string dump_json(const nlohmann::json& j, int indent = -1);

nlohmann::json read_json_file(const std::string& path);               // throws naming the file
void write_json_file(const std::string& path, const nlohmann::json& j);  // write_file_atomic (core/fs_util.h)
std::string read_text_file(const std::string& path);

}  // namespace kiln
