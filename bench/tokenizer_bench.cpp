// Single-thread encode throughput of kiln's tokenizers on a corpus of documents (a JSON array of strings,
// written by scripts/bench-tokenizer.sh). Each document is encoded on its own, without special tokens;
// one warm-up pass, then --repeat timed passes, the median reported.
//
//   tokenizer_bench --corpus corpus.json --tokenizer llama3=PATH [--tokenizer NAME=PATH ...] [--repeat 5]
//
// Prints one JSON object: per tokenizer the corpus bytes, the token count, a 32-bit FNV-1a of all ids (to
// compare with another implementation on the same corpus), each pass's seconds and the median MB/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/tokenizer.h"

int main(int argc, char** argv) {
  std::string corpus_path;
  std::vector<std::pair<std::string, std::string>> toks;
  int repeat = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tokenizer_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--corpus") {
      corpus_path = next();
    } else if (a == "--tokenizer") {
      std::string v = next();
      size_t eq = v.find('=');
      if (eq == std::string::npos) {
        std::fprintf(stderr, "tokenizer_bench: --tokenizer takes NAME=PATH\n");
        return 2;
      }
      toks.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (a == "--repeat") {
      repeat = std::max(1, std::stoi(next()));
    } else {
      std::fprintf(stderr, "usage: tokenizer_bench --corpus FILE --tokenizer NAME=PATH ... [--repeat N]\n");
      return 2;
    }
  }
  if (corpus_path.empty() || toks.empty()) {
    std::fprintf(stderr, "usage: tokenizer_bench --corpus FILE --tokenizer NAME=PATH ... [--repeat N]\n");
    return 2;
  }
  std::ifstream f(corpus_path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "tokenizer_bench: cannot open %s\n", corpus_path.c_str());
    return 1;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  const std::vector<std::string> docs = nlohmann::json::parse(ss.str()).get<std::vector<std::string>>();
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();

  nlohmann::json out = {{"corpus_bytes", bytes}, {"documents", docs.size()}, {"repeat", repeat}};
  nlohmann::json results = nlohmann::json::array();
  for (const auto& [name, path] : toks) {
    auto tok = kiln::Tokenizer::load(path);
    uint32_t fnv = 2166136261u;
    size_t count = 0;
    for (const auto& d : docs) {  // warm-up, and the ids fingerprint
      for (int32_t id : tok->encode(d, false)) fnv = (fnv ^ static_cast<uint32_t>(id)) * 16777619u;
    }
    std::vector<double> secs;
    for (int r = 0; r < repeat; ++r) {
      size_t n = 0;
      auto t0 = std::chrono::steady_clock::now();
      for (const auto& d : docs) n += tok->encode(d, false).size();
      auto t1 = std::chrono::steady_clock::now();
      secs.push_back(std::chrono::duration<double>(t1 - t0).count());
      count = n;
    }
    std::vector<double> sorted = secs;
    std::sort(sorted.begin(), sorted.end());
    double median = sorted[sorted.size() / 2];
    results.push_back({{"name", name},
                       {"tokens", count},
                       {"ids_fnv1a32", fnv},
                       {"seconds", secs},
                       {"mb_per_s", static_cast<double>(bytes) / 1e6 / median}});
    std::fprintf(stderr, "kiln %-8s %8.2f MB/s  (%zu tokens)\n", name.c_str(), static_cast<double>(bytes) / 1e6 / median,
                 count);
  }
  out["results"] = results;
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
