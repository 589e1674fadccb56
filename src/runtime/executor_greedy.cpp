// The executor's greedy chain: steps whose sampled rows are all greedy take their choices from the argmax made
// inside the step (Backend fuses it into the lm_head where it can), and the next step is queued before the host
// waits for this one's choices whenever it is predictable, so that the host's work for a step overlaps the
// device's work on the one before. Also the warm-up before serving.
//
// A speculated step: every sequence of the step in flight gets a placeholder token (its choice, not known yet),
// the scheduler plans the next step as usual, and when that plan is the same sequences in the same order with one
// token each, it runs with its tokens taken on the device from the previous step's choices (ids_from_sample). The
// placeholders are filled when the choices arrive, before anything reads them (finish checks, responses, the
// prefix cache's hashes: a plan is completed only once its tokens are known). A sequence that finished at a step
// whose successor was already queued is dropped from that successor's results.
#include <algorithm>
#include <unordered_set>

#include "core/error.h"
#include "runtime/executor_impl.h"

namespace kiln {

namespace {

constexpr int32_t kPlaceholder = 0;  // a token whose value the device holds: never read before it is filled

bool greedy_request(const SequenceGroup& g) {
  const Request& r = g.req;
  const SamplingParams& s = r.sampling;
  return !g.beam && g.num_seqs_max == 1 && !(s.temperature > 0) && s.repetition_penalty == 1.0f &&
         s.presence_penalty == 0.0f && s.frequency_penalty == 0.0f && r.bad_words.empty() && !r.return_log_probs &&
         !r.return_context_logits && !r.return_generation_logits;
}

}  // namespace

bool Executor::Impl::greedy_plan(const StepPlan& plan) const {
  bool rows = false;
  for (const StepItem& it : plan.items) {
    if (!greedy_request(*it.group)) return false;
    rows |= it.logits;
  }
  return rows;
}

Executor::Impl::InFlight Executor::Impl::launch_greedy(const StepPlan& plan, bool ids_from_sample) {
  InFlight f;
  std::vector<SeqStep> steps;
  steps.reserve(plan.items.size());
  for (const StepItem& it : plan.items) {
    f.rows.push_back(it.logits ? int32_t(f.num_rows++) : -1);
    steps.push_back(seq_step(it));
  }
  Backend& be = engine_.backend();
  if (!plan.copies.empty()) be.copy_kv_blocks(runner_->cache(), plan.copies);
  const Tensor ids = runner_->step_greedy(steps, ids_from_sample);  // I32 [num_rows] on the backend
  f.ticket = be.download_async(ids, size_t(f.num_rows) * sizeof(int32_t));
  count_step(plan);
  f.plan = plan;
  return f;
}

// The next step may continue this one: every running sequence is in this step and ends its pending tokens in it,
// none reaches its length limit with the token this step chooses, and no request arrived or was cancelled (those
// are taken in first). Requests waiting for room may still be admitted by the next plan: it is then not queued
// ahead, but run once the choices are in.
bool Executor::Impl::can_speculate(const InFlight& f) {
  if (int64_t(f.plan.items.size()) != sched_->num_running()) return false;
  for (size_t i = 0; i < f.plan.items.size(); ++i) {
    const StepItem& it = f.plan.items[i];
    if (f.rows[i] < 0) return false;
    const SequenceGroup& g = *it.group;
    const Sequence& s = g.seqs[size_t(it.seq)];
    const int64_t after = int64_t(s.len()) + 1;  // tokens once this step's choice is in
    if (after - g.prompt_len >= g.req.max_new_tokens || after >= limits_.max_seq_len) return false;
  }
  std::lock_guard lk(mu_);
  return !stop_ && incoming_.empty() && cancels_.empty();
}

std::optional<StepPlan> Executor::Impl::greedy_chain(StepPlan first) {
  Backend& be = engine_.backend();
  std::optional<InFlight> cur;
  try {
    cur = launch_greedy(first, false);
  } catch (const std::exception& e) {
    fail_plan(first, fmt::format("forward step failed: {}", e.what()));
    return std::nullopt;
  }
  for (;;) {
    // Speculate: plan (and, when it continues this step row for row, queue) the next step now.
    std::optional<InFlight> next;
    std::optional<StepPlan> unrun;  // planned on placeholders, but not queued: run once they are filled
    bool placeholders = false;
    if (can_speculate(*cur)) {
      sched_->complete(cur->plan);
      cur->completed = true;
      for (const StepItem& it : cur->plan.items) it.group->seqs[size_t(it.seq)].tokens.push_back(kPlaceholder);
      placeholders = true;
      StepPlan np = sched_->schedule();
      peak_used_ = std::max<int64_t>(peak_used_, blocks_->num_used());
      bool same = np.copies.empty() && np.items.size() == cur->plan.items.size();
      for (size_t i = 0; same && i < np.items.size(); ++i)
        same = np.items[i].group == cur->plan.items[i].group && np.items[i].seq == cur->plan.items[i].seq &&
               np.items[i].num_tokens == 1 && np.items[i].logits && cur->rows[i] == int32_t(i);
      if (same) {
        try {
          next = launch_greedy(np, true);
        } catch (const std::exception&) {
          unrun = std::move(np);  // run it again the ordinary way, once the placeholders are filled
        }
      } else {
        unrun = std::move(np);
      }
    }
    // This step's choices.
    std::vector<int32_t> ids(size_t(cur->num_rows));
    std::string error;
    try {
      be.wait_download(cur->ticket, ids.data());
    } catch (const std::exception& e) {
      error = fmt::format("forward step failed: {}", e.what());
    }
    if (next && !error.empty()) {  // drain the queued step before failing its requests
      std::vector<int32_t> unused(size_t(next->num_rows));
      try {
        be.wait_download(next->ticket, unused.data());
      } catch (const std::exception&) {
      }
    }
    std::unordered_set<const SequenceGroup*> gone;  // finished or failed groups (deleted)
    if (error.empty() && !cur->completed) sched_->complete(cur->plan);
    for (size_t i = 0; i < cur->plan.items.size(); ++i) {
      const StepItem& it = cur->plan.items[i];
      SequenceGroup* g = it.group;
      if (gone.count(g)) continue;
      if (placeholders) g->seqs[size_t(it.seq)].tokens.pop_back();
      const RequestId id = g->id;
      if (!error.empty()) {
        finish_group(*g, FinishReason::Error, error);
      } else {
        if (cur->rows[i] < 0) continue;
        GroupRows gr;
        gr.g = g;
        gr.rows.push_back({it.seq, cur->rows[i]});
        SampledToken t;
        t.id = ids[size_t(cur->rows[i])];
        try {
          sample_group(*g, gr, &t);
        } catch (const std::exception& e) {
          finish_group(*g, FinishReason::Error, e.what());
        }
      }
      if (!groups_.count(id)) gone.insert(g);
    }
    if (!error.empty()) {
      if (next) {
        for (const StepItem& it : next->plan.items)
          if (!gone.count(it.group)) finish_group(*it.group, FinishReason::Error, error);
      }
      publish_stats();
      return std::nullopt;
    }
    publish_stats();
    auto drop_gone = [&](StepPlan& p, std::vector<int32_t>* rows) {
      size_t k = 0;
      for (size_t i = 0; i < p.items.size(); ++i) {
        if (gone.count(p.items[i].group)) continue;
        p.items[k] = p.items[i];
        if (rows) (*rows)[k] = (*rows)[i];
        ++k;
      }
      p.items.resize(k);
      if (rows) rows->resize(k);
    };
    if (unrun) {
      drop_gone(*unrun, nullptr);
      return unrun;
    }
    if (!next) return std::nullopt;
    drop_gone(next->plan, &next->rows);
    cur = std::move(next);
    if (cur->plan.items.empty()) {  // every sequence finished: its choices are not needed
      std::vector<int32_t> unused(size_t(cur->num_rows));
      be.wait_download(cur->ticket, unused.data());
      return std::nullopt;
    }
  }
}

void Executor::Impl::warm_up() {
  Backend& be = engine_.backend();
  if (!cfg_.warm_up || !be.supports_step_graphs()) return;
  const EngineLimits& el = engine_.limits();
  const KvCacheDesc& cache = runner_->cache();
  const int64_t tpb = cache.tokens_per_block;
  // One sequence over the pool's first blocks; what it writes there is overwritten before anything reads it.
  const int64_t most = std::min({el.max_num_tokens, el.max_input_len, el.max_seq_len - 4, cache.num_blocks * tpb - 4});
  if (most < 1) return;
  std::vector<int32_t> table(size_t((most + 4 + tpb - 1) / tpb));
  for (size_t i = 0; i < table.size(); ++i) table[i] = int32_t(i);
  auto prompt = [&](int64_t n) {
    SeqStep s;
    s.tokens.assign(size_t(n), 0);
    s.block_table = &table;
    return s;
  };
  // Prompt steps at every power of two up to the largest the engine takes (each GEMM bucket's kernels).
  for (int64_t n = 1;; n = std::min(most, 2 * n)) {
    runner_->step_greedy({prompt(n)});
    if (n == most) break;
  }
  // Batch-1 decode steps: run once, recorded, replayed, for each way the loop runs them.
  for (int mode = 0; mode < 3; ++mode)
    for (int rep = 0; rep < 3; ++rep) {
      SeqStep s = prompt(1);
      s.num_cached = 1 + rep;
      if (mode == 0) runner_->step_greedy({s}, false);
      if (mode == 1) runner_->step_greedy({s}, true);
      if (mode == 2) runner_->step({s});
    }
  be.synchronize();
}

}  // namespace kiln
