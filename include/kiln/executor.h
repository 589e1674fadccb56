// kiln::Executor: serves many requests at once on one engine.
//
// One loop thread owns the device: schedule -> forward step -> sample -> stream -> free. Requests join the
// running batch as soon as the scheduler can fit them (in-flight batching); KV lives in a pool of fixed-size
// blocks. enqueue, cancel, await_responses and stats may be called from any thread.
//
//   kiln::Executor ex("engines/tiny-code", {});
//   kiln::Request r;
//   r.input_ids = {0, 563, 1181};
//   r.max_new_tokens = 32;
//   r.sampling.temperature = 0.8f;
//   r.sampling.seed = 7;
//   kiln::RequestId id = ex.enqueue(r);              // throws kiln::Error if r breaks a limit
//   for (bool done = false; !done;)
//     for (auto& resp : ex.await_responses(id))     // blocks until something arrives
//       done = resp.is_final;
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/request.h"

namespace kiln {

class Engine;

enum class SchedulerPolicy {
  GuaranteedNoEvict,  // admit a request only when KV blocks for its whole output are free: never preempts
  MaxUtilization,     // admit while blocks for the next step are free; when they run out, preempt the newest
                      // request (its KV is dropped and recomputed when it resumes; its output is unchanged)
};
// "guaranteed_no_evict" / "max_utilization"; throws kiln::Error naming the accepted values otherwise.
SchedulerPolicy scheduler_policy_from_name(const std::string& name);
const char* scheduler_policy_name(SchedulerPolicy p);

struct ExecutorConfig {
  SchedulerPolicy policy = SchedulerPolicy::GuaranteedNoEvict;
  // KV pool size: at most kv_cache_bytes when set (a hard cap), else kv_cache_fraction of the backend's free
  // memory, but no more than twice what max_batch_size sequences of max_seq_len tokens can use.
  std::optional<int64_t> kv_cache_bytes;
  double kv_cache_fraction = 0.9;
  int32_t tokens_per_block = 32;
  int64_t max_num_tokens = 0;  // tokens per step; 0: the engine's (more than the engine's is an error)
  int64_t max_batch_size = 0;  // sequences per step; 0: the engine's (more is an error)
  bool enable_prefix_reuse = false;  // share full KV blocks between requests with the same prefix
  uint64_t seed = 0;                 // seeds requests that set none, together with their id
  int num_threads = 0;               // cpu threads when the executor loads the engine itself (0: all cores)
  // Before serving (on backends with step graphs): workspaces sized for the limits, the first use of each GEMM
  // bucket's kernels by prompt steps, and the batch-1 decode graphs recorded, so that none of it happens inside
  // the first requests.
  bool warm_up = true;
};

struct Stats {
  int64_t running_requests = 0;  // admitted, holding KV blocks
  int64_t queued_requests = 0;   // waiting for admission (new or preempted)
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;    // referenced by a running sequence
  int64_t kv_blocks_free = 0;    // total - used (includes cached blocks no sequence holds)
  int64_t kv_blocks_cached = 0;  // full blocks in the prefix cache (held or not)
  int64_t kv_blocks_peak = 0;    // highest kv_blocks_used seen
  int64_t tokens_per_block = 0;
  int64_t reused_blocks = 0;     // blocks served from the prefix cache instead of computed (cumulative)
  int64_t preemptions = 0;       // cumulative
  int64_t copied_blocks = 0;     // copy-on-write block copies (cumulative)
  int64_t steps = 0;             // forward steps run
  int64_t last_step_tokens = 0;  // tokens in the latest step
  int64_t total_step_tokens = 0;
  double mean_tokens_per_step = 0;
  int64_t completed_requests = 0;  // final responses sent (any reason)
  int64_t kept_responses = 0;      // responses held for await_responses, not yet taken
  int64_t await_wakeups = 0;       // times a waiting await_responses was woken (cumulative)
};

// Receives every response of one request, in order, on the executor's loop thread: it must return quickly (hand
// the response to another thread) and must not call await_responses. The last call has is_final set.
using ResponseCallback = std::function<void(Response)>;

class Executor {
 public:
  // Loads the engine folder (and owns it).
  explicit Executor(const std::string& engine_dir, const ExecutorConfig& cfg = {});
  // Uses an engine the caller owns; it must outlive the executor, and only one executor may use it at a time.
  explicit Executor(Engine& engine, const ExecutorConfig& cfg = {});
  ~Executor();  // stops the loop; requests still running get no further responses
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Checks the request against the engine's limits and the KV pool, then queues it (FCFS).
  // Throws kiln::Error with a message naming the field or limit; the executor keeps serving the others.
  RequestId enqueue(const Request& r);
  // The same, with the responses delivered to `on_response` instead of await_responses.
  RequestId enqueue(const Request& r, ResponseCallback on_response);

  // Everything enqueue checks, without queuing: throws kiln::Error as enqueue would (callers that submit several
  // requests together check them all first, so that a bad one stops the batch before any of it runs).
  void check(const Request& r) const;
  // Stops a request: its final response has finish reason `cancelled` (with the tokens generated so far) and
  // its KV blocks are freed. False when the id is unknown or its final response was already produced.
  bool cancel(RequestId id);
  // The caller will not read this request's responses: cancels it if it is still running and drops its responses,
  // those ready and those still to come (await_responses never returns them; a callback is not called again).
  void release(RequestId id);
  // Block until at least one response is ready (or the timeout passes; unset: no timeout) and return all
  // ready responses, in the order produced: of any request, or of one request. For an id that was never issued
  // or whose final response was already returned, the second form returns an empty list at once. A response
  // wakes only the callers waiting for its request and those waiting for any.
  std::vector<Response> await_responses(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  std::vector<Response> await_responses(RequestId id, std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  Stats stats() const;
  int64_t num_kv_blocks() const;
  const Engine& engine() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
