// Runs an evaluation's requests through the Executor (in-flight batching: every request queued as soon as fewer
// than `window` are outstanding) and shows progress on stderr: a bar on a terminal, else a line per 10%.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/progress.h"
#include "kiln/executor.h"

namespace kiln::eval {

class Progress {
 public:
  Progress(std::string label, size_t total);
  void step();  // one more done

 private:
  std::string label_;
  size_t total_, done_ = 0, last_tenth_ = 0;
  std::unique_ptr<ProgressBar> bar_;  // on a terminal
};

struct RunSpec {
  size_t count = 0;
  std::function<Request(size_t i)> make;               // the i-th request
  std::function<void(size_t i, Response& r)> on_done;  // its final response (non-streaming: the whole output)
  std::string label;                                   // progress label
  std::function<std::string(size_t i)> describe;       // names request i in errors ("FILE:LINE")
  size_t window = 0;                                   // in flight at most (0: 2 x the engine's max batch size)
};

// Throws kiln::Error naming the request (describe(i)) when one is refused or fails.
void run_requests(Executor& ex, const RunSpec& spec);

}  // namespace kiln::eval
