// Prometheus text format (version 0.0.4) of the server's and the executor's counters, names prefixed `kiln:`.
// Touched only on the server's event-loop thread.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kiln/executor.h"

namespace kiln::serve {

struct Histogram {
  std::vector<double> bounds;    // upper bounds in seconds, ascending (+Inf implied)
  std::vector<uint64_t> counts;  // per bound, not cumulative; one more for +Inf
  double sum = 0;
  uint64_t count = 0;
  explicit Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
  void observe(double seconds);
};

struct Metrics {
  std::map<std::string, uint64_t> success_by_reason;  // finished requests by finish reason (stop, length, error, abort)
  uint64_t prompt_tokens = 0, generation_tokens = 0;
  uint64_t prefix_cache_queries = 0;            // prompt tokens of admitted requests
  uint64_t http_requests = 0, http_errors = 0;  // every request; those answered 4xx/5xx
  int64_t open_connections = 0;
  Histogram ttft{{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80}};
  Histogram itl{{0.001, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
                 0.1,   0.15,  0.2,  0.3,   0.4,  0.5,   0.75, 1,    2.5,  5}};
  Histogram e2e{{0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240}};
};

// The exposition text: the server's counters and the executor's statistics.
std::string render_metrics(const Metrics& m, const Stats& s, const std::string& model_name);

}  // namespace kiln::serve
