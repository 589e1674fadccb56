#include "core/fs_util.h"

#include <unistd.h>

#include "core/error.h"

namespace fs = std::filesystem;

namespace kiln {

StagingDir::StagingDir(const std::string& target) : target_(target) {
  if (target.empty()) fail("output directory: empty path");
  if (fs::exists(target_)) fail("{}: output directory already exists; remove it or choose another", target);
  fs::path parent = fs::absolute(target_).parent_path();
  if (!fs::is_directory(parent)) fail("{}: parent directory {} does not exist", target, parent.string());
  tmp_ = parent / ("." + fs::absolute(target_).filename().string() + ".tmp-" + std::to_string(getpid()));
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  if (!fs::create_directory(tmp_, ec)) fail("{}: cannot create: {}", tmp_.string(), ec.message());
}

StagingDir::~StagingDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void StagingDir::commit() {
  std::error_code ec;
  fs::rename(tmp_, target_, ec);
  if (ec) fail("{}: cannot move output into place: {}", target_.string(), ec.message());
  committed_ = true;
}

}  // namespace kiln
