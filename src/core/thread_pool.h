// A fixed pool of worker threads with a blocking parallel_for. No global state: the cpu backend owns one.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kiln {

// More threads than this is a mistake (a mistyped --threads), not a machine: refused before any is started.
constexpr int kMaxThreads = 1024;

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // 0 (or negative): hardware concurrency; more than kMaxThreads: throws
  ~ThreadPool();
  int size() const { return int(workers_.size()) + 1; }
  // Calls fn(begin, end) over disjoint chunks covering [0, n); returns when all are done.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker(int index);
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace kiln
