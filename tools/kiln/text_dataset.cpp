#include "text_dataset.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace kiln::cli {

namespace {

bool is_jsonl(const std::string& path) {
  return path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
}

// Calls `fn(json, line_number)` for each non-blank line of `in`, parsed as JSON (a line that is not JSON fails,
// naming the flag, file and line); stops early when `fn` returns false.
template <typename Fn>
void for_each_jsonl_line(std::istream& in, const std::string& path, const std::string& flag, Fn&& fn) {
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line, nullptr, true, false);
    } catch (const std::exception& e) {
      fail("{} {}:{}: not JSON ({})", flag, path, n, e.what());
    }
    if (!fn(j, n)) return;
  }
}

}  // namespace

std::vector<std::string> read_text_dataset(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) fail("{} {}: no such file", flag, path);
  if (fs::is_directory(path)) fail("{} {}: a directory, not a text file", flag, path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{} {}: cannot be read", flag, path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();
  std::vector<std::string> docs;
  if (!is_jsonl(path)) {
    if (all.find_first_not_of(" \t\r\n") != std::string::npos) docs.push_back(all);
  } else {
    std::istringstream lines(all);
    for_each_jsonl_line(lines, path, flag, [&](const nlohmann::json& j, int64_t n) {
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
        fail("{} {}:{}: expected an object with a string \"text\"", flag, path, n);
      std::string t = j["text"].get<std::string>();
      if (!t.empty()) docs.push_back(std::move(t));
      return true;
    });
  }
  if (docs.empty()) fail("{} {}: empty (no text)", flag, path);
  return docs;
}

std::optional<std::vector<int32_t>> read_token_dataset(const std::string& path, const std::string& flag) {
  if (!is_jsonl(path)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;  // read_text_dataset names what is wrong
  std::vector<int32_t> ids;
  bool first = true;
  for_each_jsonl_line(in, path, flag, [&](const nlohmann::json& j, int64_t n) {
    if (first && !(j.is_object() && j.contains("input_ids"))) return false;
    first = false;
    if (!j.is_object() || !j.contains("input_ids") || !j["input_ids"].is_array())
      fail("{} {}:{}: expected an object with a list \"input_ids\" (as the first line)", flag, path, n);
    for (auto& v : j["input_ids"]) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
        fail("{} {}:{}: input_ids holds {}, not a token id", flag, path, n, v.dump());
      ids.push_back(int32_t(v.get<int64_t>()));
    }
    return true;
  });
  if (first) return std::nullopt;
  return ids;
}

}  // namespace kiln::cli
