#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace kiln {

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)), total_(total > 0 ? total : 1), tty_(isatty(STDERR_FILENO) != 0) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(int64_t done) {
  if (!tty_ || finished_) return;
  const int width = 30;
  int filled = int(done * width / total_);
  if (filled == last_ && done != total_) return;
  last_ = filled;
  std::string bar(size_t(filled), '#');
  bar.resize(width, ' ');
  std::fprintf(stderr, "\r%s [%s] %lld/%lld", label_.c_str(), bar.c_str(), (long long)done, (long long)total_);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!tty_ || finished_) return;
  finished_ = true;
  update(total_);
  std::fprintf(stderr, "\n");
}

}  // namespace kiln
