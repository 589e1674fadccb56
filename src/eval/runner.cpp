#include "eval/runner.h"

#include <unistd.h>

#include <cstdio>
#include <map>

#include "core/error.h"
#include "runtime/engine.h"

namespace kiln::eval {

Progress::Progress(std::string label, size_t total) : label_(std::move(label)), total_(total) {
  if (isatty(STDERR_FILENO)) bar_ = std::make_unique<ProgressBar>(label_, int64_t(total));
}

void Progress::step() {
  ++done_;
  if (bar_) {
    bar_->update(int64_t(done_));
    return;
  }
  const size_t tenth = total_ ? done_ * 10 / total_ : 10;
  if (tenth > last_tenth_ || done_ == total_) {
    last_tenth_ = tenth;
    std::fprintf(stderr, "%s: %zu/%zu\n", label_.c_str(), done_, total_);
    std::fflush(stderr);
  }
}

void run_requests(Executor& ex, const RunSpec& spec) {
  const size_t window =
      spec.window ? spec.window : size_t(std::max<int64_t>(1, 2 * ex.engine().info().limits.max_batch_size));
  auto name = [&](size_t i) { return spec.describe ? spec.describe(i) : "request " + std::to_string(i); };
  Progress progress(spec.label, spec.count);
  std::map<RequestId, size_t> index;
  size_t next = 0, done = 0;
  while (done < spec.count) {
    for (; next < spec.count && index.size() < window; ++next) {
      try {
        index[ex.enqueue(spec.make(next))] = next;
      } catch (const Error& e) {
        fail("{}: {}", name(next), e.what());
      }
    }
    for (Response& r : ex.await_responses()) {
      if (!r.is_final) continue;
      auto it = index.find(r.request_id);
      if (it == index.end()) continue;
      const size_t i = it->second;
      index.erase(it);
      if (!r.error.empty()) fail("{}: {}", name(i), r.error);
      spec.on_done(i, r);
      ++done;
      progress.step();
    }
  }
}

}  // namespace kiln::eval
