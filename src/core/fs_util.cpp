#include "core/fs_util.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace fs = std::filesystem;

namespace kiln {

namespace {

// The absolute path without a trailing separator ("out/" names the directory "out").
fs::path normalized(const std::string& p) {
  fs::path a = fs::absolute(p).lexically_normal();
  if (a.filename().empty() && a.has_parent_path()) a = a.parent_path();
  return a;
}

}  // namespace

StagingDir::StagingDir(const std::string& target) {
  if (target.empty()) fail("output directory: empty path");
  target_ = normalized(target);
  if (fs::exists(target_) || fs::is_symlink(target_))
    fail("{}: output {} already exists; remove it or choose another", target,
         fs::is_directory(target_) ? "directory" : "path");
  const fs::path parent = target_.parent_path();
  if (!fs::is_directory(parent)) fail("{}: parent directory {} does not exist", target, parent.string());
  const std::string name = fmt::format(".{}.tmp-{}", target_.filename().string(), getpid());
  tmp_ = parent / name;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  if (!fs::create_directory(tmp_, ec)) {
    const std::string what = tmp_.string();
    tmp_.clear();  // nothing of ours to remove
    fail("{}: cannot create {}: {}", target, what, ec ? ec.message() : "it exists");
  }
}

StagingDir::~StagingDir() {
  if (!committed_ && !tmp_.empty()) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void StagingDir::commit() {
  // rename(2) would replace an empty directory created at the target meanwhile: an existing target stays untouched.
  if (fs::exists(target_)) fail("{}: output appeared while it was being written; left untouched", target_.string());
  std::error_code ec;
  fs::rename(tmp_, target_, ec);
  if (ec) fail("{}: cannot move output into place: {}", target_.string(), ec.message());
  committed_ = true;
}

void check_output_file(const std::string& path, const std::string& what) {
  if (path.empty()) fail("{}: empty path", what);
  if (fs::is_directory(path)) fail("{} {}: is a directory (give a file path)", what, path);
  const fs::path parent = fs::absolute(path).parent_path();
  if (!fs::is_directory(parent)) fail("{} {}: parent directory {} does not exist", what, path, parent.string());
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  if (fs::is_directory(path)) fail("{}: is a directory (give a file path)", path);
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("{}: cannot create {}: {}", path, tmp, std::strerror(errno));
  const bool wrote = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const int err = errno;
  if (std::fclose(f) != 0 || !wrote) {
    std::remove(tmp.c_str());
    fail("{}: write failed: {}", path, std::strerror(wrote ? errno : err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    fail("{}: cannot rename {} into place: {}", path, tmp, std::strerror(e));
  }
}

}  // namespace kiln
