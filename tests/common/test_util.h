// Helpers shared by tests: temporary directories, running the kiln CLI, reading fixtures.
#pragma once
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace kiln::test {

// The message of the kiln::Error that f throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline std::string source_dir() { return KILN_SOURCE_DIR; }
inline std::string kiln_binary() { return KILN_BINARY; }
// A fixture model folder: "llama" is tests/data/models/llama (the shared fixtures); "extra/NAME" is
// tests/data/extra/NAME (other shapes made by scripts/dev/make_extra_goldens.py with transformers).
inline std::string model_dir(const std::string& name) {
  if (name.rfind("extra/", 0) == 0) return source_dir() + "/tests/data/" + name;
  return source_dir() + "/tests/data/models/" + name;
}

// A fresh directory under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kiln-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CmdResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

// Runs `PREFIX kiln ARGS` through the shell, capturing output.
inline CmdResult run_kiln_with_prefix(const std::string& prefix, const std::string& args) {
  CmdResult r;
  std::string cmd = prefix + kiln_binary() + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int st = ::pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// Runs `kiln ARGS` through the shell, capturing output.
inline CmdResult run_kiln(const std::string& args) { return run_kiln_with_prefix("", args); }

// run_kiln under a virtual-memory cap (`ulimit -v`, KiB): a limit that is checked only after allocating for it then
// fails with an allocation error instead of the limit's own message, on any machine.
// (AddressSanitizer reserves terabytes of address space: there the command runs uncapped.)
inline CmdResult run_kiln_capped(const std::string& args, long vmem_kib) {
#if defined(__SANITIZE_ADDRESS__)
  (void)vmem_kib;
  return run_kiln(args);
#else
  return run_kiln_with_prefix("ulimit -v " + std::to_string(vmem_kib) + " && ", args);
#endif
}

// ||a - b|| / ||b|| over n values.
inline double rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += double(a[i] - b[i]) * double(a[i] - b[i]);
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

inline std::string join_ids(const int32_t* ids, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

}  // namespace kiln::test
