// Shared helpers of the tokenizer tests.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "kiln/tokenizer.h"

namespace kiln::testing {

inline std::string source_path(const std::string& rel) { return std::string(KILN_SOURCE_DIR) + "/" + rel; }

inline nlohmann::json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// The reference tokenizers fetched by scripts/fetch-tokenizers.sh (llama3, qwen3, llama2, gpt2). Loaded once.
// Absent files are a test failure with the command that fetches them.
inline const Tokenizer* reference_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  if (auto it = cache.find(name); it != cache.end()) return it->second.get();
  std::string dir = source_path("third_party/tokenizers/" + name);
  std::string file = dir + (name == "gpt2" ? "/vocab.json" : "/tokenizer.json");
  if (!std::filesystem::exists(file)) {
    ADD_FAILURE() << file << " is missing: run scripts/fetch-tokenizers.sh (make test does)";
    return nullptr;
  }
  auto t = Tokenizer::load(file);
  return (cache[name] = std::move(t)).get();
}

inline std::string decode_incrementally(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip = false) {
  IncrementalDecoder dec(tok, skip);
  std::string all;
  for (int32_t id : ids) all += dec.push(id);
  all += dec.flush();
  return all;
}

}  // namespace kiln::testing
