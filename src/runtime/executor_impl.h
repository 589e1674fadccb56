// Executor internals. Two sides share this struct:
//   - callers (any thread): enqueue, cancel, await_responses, stats -- under mu_;
//   - the loop thread, which alone touches the engine, the KV pool, the scheduler and every SequenceGroup.
// executor.cpp holds the caller side and set-up; executor_loop.cpp the loop.
#pragma once
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kiln/executor.h"
#include "runtime/block_manager.h"
#include "runtime/engine.h"
#include "runtime/model_runner.h"
#include "runtime/request_check.h"
#include "runtime/sampling.h"
#include "runtime/scheduler.h"
#include "runtime/sequence.h"

namespace kiln {

// The logits rows of one request in a step: (sequence index, row of the step's logits), and where its rows start
// in the step's SampleBatch (sampled and beam groups each have their own).
struct GroupRows {
  SequenceGroup* g = nullptr;
  std::vector<std::pair<int32_t, int32_t>> rows;
  size_t first = 0;
};

struct Executor::Impl {
  Impl(Engine& engine, std::unique_ptr<Engine> owned, const ExecutorConfig& cfg);
  ~Impl();

  // caller side
  int64_t check(const Request& r) const;  // what enqueue checks; returns the request's worst-case KV blocks
  RequestId enqueue(const Request& r, ResponseCallback cb);
  bool cancel(RequestId id);
  void release(RequestId id);
  std::vector<Response> await(const RequestId* id, std::optional<std::chrono::milliseconds> timeout);

  // loop side
  void loop();
  void step();
  // Runs a scheduled plan: the greedy chain (executor_greedy.cpp) when every row it samples is greedy on the
  // device, else one step with sampling / beam search on the step's logits.
  void run_plan(StepPlan plan);
  void run_sampled(const StepPlan& plan);
  // The model step of one plan item: its sequence's pending tokens, cache position and blocks.
  static SeqStep seq_step(const StepItem& it);
  void fail_plan(const StepPlan& plan, const std::string& error);
  // Sampling and beam search over the step's logits (F32 [rows, V], on the backend); item_rows[i]: the logits row
  // plan item i samples from, or -1.
  void choose_tokens(const StepPlan& plan, const Tensor& logits, const std::vector<int32_t>& item_rows);
  // Logits rows a request asked for (return_context_logits / return_generation_logits), to the host.
  void keep_logits(const StepPlan& plan, const Tensor& logits, const std::vector<int32_t>& first_rows,
                   const std::vector<int32_t>& item_rows);

  // The greedy chain (executor_greedy.cpp). A step whose sampled rows are all greedy takes its choices from the
  // argmax inside the step (fused into the lm_head where the backend can); while the next step is predictable (the
  // same sequences, one token each, nothing waiting), it is queued before the host waits for this one's choices,
  // taking its tokens from them on the device.
  struct InFlight {
    StepPlan plan;
    std::vector<int32_t> rows;  // the logits row of each item, or -1
    int64_t num_rows = 0;
    uint64_t ticket = 0;        // the choices' download
    bool completed = false;     // sched_->complete(plan) done
  };
  bool greedy_plan(const StepPlan& plan) const;
  // Queues the plan's step with the greedy choice (ids_from_sample: its tokens are the previous step's choices).
  InFlight launch_greedy(const StepPlan& plan, bool ids_from_sample);
  bool can_speculate(const InFlight& f);
  // Runs greedy plans until the chain ends; returns a plan scheduled but not run (run it next), if any.
  std::optional<StepPlan> greedy_chain(StepPlan plan);
  void warm_up();
  void sample_group(SequenceGroup& g, const GroupRows& gr, const SampledToken* picked);
  void beam_group(SequenceGroup& g, const GroupRows& gr, const BeamCandidates& c);
  Response progress_response(SequenceGroup& g, bool final);
  void finish_group(SequenceGroup& g, FinishReason reason, const std::string& error);
  void emit(Response r);  // loop thread; refreshes stats in the same critical section
  void publish_stats();
  void fill_stats_locked();

  std::unique_ptr<Engine> owned_;
  Engine& engine_;
  ExecutorConfig cfg_;
  int64_t vocab_ = 0;
  RequestLimits limits_;
  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<Scheduler> sched_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<BackendSampler> sampler_;

  // shared with callers, under mu_
  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // wakes the loop
  // await_responses for any request waits on any_cv_; for one request on its own condition variable, registered
  // in id_waiters_ while it waits, so that a response wakes only those who want it.
  std::condition_variable any_cv_;
  int any_waiters_ = 0;
  std::unordered_multimap<RequestId, std::condition_variable*> id_waiters_;
  bool stop_ = false;
  RequestId next_id_ = 1;
  std::vector<std::unique_ptr<SequenceGroup>> incoming_;
  std::vector<RequestId> cancels_;
  std::unordered_set<RequestId> live_;  // enqueued, final response not yet produced
  struct Ready {
    uint64_t seq = 0;  // order of production, across requests
    Response r;
  };
  std::unordered_map<RequestId, std::deque<Ready>> ready_;  // responses for await_responses, per request
  uint64_t next_seq_ = 0;
  std::unordered_map<RequestId, std::shared_ptr<ResponseCallback>> callbacks_;  // requests enqueued with one
  std::unordered_set<RequestId> released_;  // live requests whose responses are dropped
  Stats stats_;
  size_t drop_ready_locked(RequestId id);  // removes the request's ready responses; returns how many

  // loop thread only
  std::unordered_map<RequestId, std::unique_ptr<SequenceGroup>> groups_;
  int64_t steps_ = 0, last_tokens_ = 0, total_tokens_ = 0, peak_used_ = 0, copied_ = 0;
  void count_step(const StepPlan& plan);
  std::thread thread_;
};

}  // namespace kiln
