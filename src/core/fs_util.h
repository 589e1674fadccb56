// Writing a directory atomically: build it under a temporary name beside the target, rename at the end.
#pragma once
#include <filesystem>
#include <string>

namespace kiln {

class StagingDir {
 public:
  // Fails (naming the path) when `target` already exists or its parent cannot be written.
  explicit StagingDir(const std::string& target);
  ~StagingDir();  // removes the staging directory unless commit() succeeded
  const std::filesystem::path& path() const { return tmp_; }
  std::string file(const std::string& name) const { return (tmp_ / name).string(); }
  void commit();  // renames the staging directory to the target

 private:
  std::filesystem::path target_, tmp_;
  bool committed_ = false;
};

}  // namespace kiln
