// Writing outputs atomically: a directory is built under a temporary name beside the target and renamed at the
// end; a file is written to PATH.tmp and renamed. Every failure removes the temporary and names the problem.
#pragma once
#include <filesystem>
#include <string>

namespace kiln {

class StagingDir {
 public:
  // Fails (naming the path) when `target` already exists or its parent cannot be written. A trailing '/' is
  // allowed (`--output out/`).
  explicit StagingDir(const std::string& target);
  ~StagingDir();  // removes the staging directory unless commit() succeeded
  const std::filesystem::path& path() const { return tmp_; }
  std::string file(const std::string& name) const { return (tmp_ / name).string(); }
  void commit();  // renames the staging directory to the target

 private:
  std::filesystem::path target_, tmp_;
  bool committed_ = false;
};

// Fails, naming `what` (a flag such as "--output-file") and the path, when `path` cannot be an output file: it is
// a directory, or its parent directory does not exist. For checking before any work is done.
void check_output_file(const std::string& path, const std::string& what);

// Writes `bytes` to PATH.tmp and renames it to PATH; on any failure PATH.tmp is removed and PATH is untouched.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace kiln
