// Scheduler: which sequences run in the next step, and the KV blocks they write.
//
// Each step packs, under max_batch_size sequences and max_num_tokens tokens:
//   1. running requests, oldest first: one token per generating sequence, or the next chunk of a prompt
//      (chunked context: a prompt longer than the token budget is processed over several steps);
//   2. then waiting requests, oldest first (FCFS: the queue stops at the first one that does not fit).
// A request is scheduled as a whole: all its sequences (beams) in the same step, or not at all. A request with
// several sequences processes each one's pending tokens up to the last, then the last tokens of all sequences
// together, so that beams are always sampled together.
//
// Blocks: before a step, every sequence gets blocks for the positions it writes; a shared block that would be
// written is copied first (copy-on-write; StepPlan::copies). Admission by policy:
//   guaranteed_no_evict: admit while the worst-case blocks of all running requests fit the pool -- then every
//     request can always finish and nothing is ever preempted;
//   max_utilization: admit while this step's blocks are available; when a running request cannot get its
//     blocks, preempt the newest running request (free its blocks, requeue it) until it can.
#pragma once
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "kiln/executor.h"
#include "runtime/block_manager.h"
#include "runtime/sequence.h"

namespace kiln {

struct SchedulerConfig {
  SchedulerPolicy policy = SchedulerPolicy::GuaranteedNoEvict;
  int64_t max_num_tokens = 0;
  int64_t max_batch_size = 0;
  bool prefix_reuse = false;
};

struct StepItem {
  SequenceGroup* group = nullptr;
  int32_t seq = 0;         // index into group->seqs
  int32_t num_tokens = 0;  // tokens[num_computed, num_computed + num_tokens) run this step
  bool logits = false;     // the chunk ends the sequence's pending tokens: sample from its last row
};

struct StepPlan {
  std::vector<StepItem> items;
  std::vector<std::pair<int32_t, int32_t>> copies;  // KV blocks to copy (src, dst) before the step
  int64_t num_tokens = 0;
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& cfg, BlockManager& blocks);

  // Blocks a request needs at most over its life (sequences x blocks of prompt + max_new_tokens - 1).
  int64_t worst_case_blocks(int32_t num_seqs, int64_t prompt_len, int64_t max_new_tokens) const;

  void add(SequenceGroup* g);     // a new request: waits for admission
  void remove(SequenceGroup* g);  // finished, cancelled or failed: frees its blocks, forgets it
  StepPlan schedule();
  // After the step ran: advances num_computed of every item, publishes newly full blocks (prefix reuse).
  void complete(const StepPlan& plan);
  // A copy of `parent` sharing its computed blocks (beams and sampled sequences fork after the prompt).
  Sequence fork(const Sequence& parent);
  void release(Sequence& s);  // frees one sequence's blocks

  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  SequenceGroup* oldest_waiting() const { return waiting_.empty() ? nullptr : waiting_.front(); }
  int64_t num_running() const { return int64_t(running_.size()); }
  int64_t num_waiting() const { return int64_t(waiting_.size()); }
  int64_t preemptions() const { return preemptions_; }
  int64_t reused_blocks() const { return reused_blocks_; }

 private:
  // The work of one request this step within the budgets; false when it does not fit (nothing to do).
  bool plan_group(SequenceGroup* g, int64_t tokens_left, int64_t seqs_left, std::vector<StepItem>& out) const;
  // Blocks for positions [num_computed, upto) of s, exclusively owned; false when the pool runs out.
  bool reserve(Sequence& s, int32_t upto, StepPlan& plan);
  void preempt(SequenceGroup* g, StepPlan& plan);
  int32_t match_prefix(Sequence& s);  // cached blocks for the sequence's leading full blocks
  void drop_blocks(SequenceGroup* g, std::vector<int32_t>* freed);
  void drop_blocks(SequenceGroup* g, StepPlan& plan);  // and cancels planned copies into freed blocks
  void insert_by_arrival(std::deque<SequenceGroup*>& q, SequenceGroup* g);

  SchedulerConfig cfg_;
  BlockManager& bm_;
  std::deque<SequenceGroup*> running_;  // by arrival
  std::deque<SequenceGroup*> waiting_;  // by arrival (preempted requests keep theirs)
  int64_t committed_ = 0;               // guaranteed_no_evict: worst-case blocks of running requests
  int64_t preemptions_ = 0, reused_blocks_ = 0;
};

}  // namespace kiln
