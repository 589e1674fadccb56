// A one-line progress bar on stderr, drawn only when stderr is a terminal.
#pragma once
#include <cstdint>
#include <string>

namespace kiln {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  ~ProgressBar();
  void update(int64_t done);
  void finish();

 private:
  std::string label_;
  int64_t total_, last_ = -1;
  bool tty_, finished_ = false;
};

}  // namespace kiln
