#include "text_dataset.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace kiln::cli {

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
  const bool jsonl = path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
  if (!jsonl) {
    if (all.find_first_not_of(" \t\r\n") != std::string::npos) docs.push_back(all);
  } else {
    std::istringstream lines(all);
    std::string line;
    for (int64_t n = 1; std::getline(lines, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line, nullptr, true, false);
      } catch (const std::exception& e) {
        fail("{} {}:{}: not JSON ({})", flag, path, n, e.what());
      }
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
        fail("{} {}:{}: expected an object with a string \"text\"", flag, path, n);
      std::string t = j["text"].get<std::string>();
      if (!t.empty()) docs.push_back(std::move(t));
    }
  }
  if (docs.empty()) fail("{} {}: empty (no text)", flag, path);
  return docs;
}

}  // namespace kiln::cli
