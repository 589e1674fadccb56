#include "runtime/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace kiln {

Scheduler::Scheduler(const SchedulerConfig& cfg, BlockManager& blocks) : cfg_(cfg), bm_(blocks) {
  if (cfg_.max_num_tokens < 1) fail("scheduler: max_num_tokens {} must be positive", cfg_.max_num_tokens);
  if (cfg_.max_batch_size < 1) fail("scheduler: max_batch_size {} must be positive", cfg_.max_batch_size);
}

int64_t Scheduler::worst_case_blocks(int32_t num_seqs, int64_t prompt_len, int64_t max_new_tokens) const {
  // The last generated token is never run through the model, so its KV is never written.
  const int64_t tpb = bm_.tokens_per_block(), kv_tokens = prompt_len + max_new_tokens - 1;
  return int64_t(num_seqs) * ((kv_tokens + tpb - 1) / tpb);
}

void Scheduler::insert_by_arrival(std::deque<SequenceGroup*>& q, SequenceGroup* g) {
  auto it = std::upper_bound(q.begin(), q.end(), g,
                             [](const SequenceGroup* a, const SequenceGroup* b) { return a->arrival < b->arrival; });
  q.insert(it, g);
}

void Scheduler::add(SequenceGroup* g) { insert_by_arrival(waiting_, g); }

void Scheduler::drop_blocks(SequenceGroup* g, std::vector<int32_t>* freed) {
  for (auto& s : g->seqs) {
    for (int32_t b : s.blocks) {
      bm_.release(b);
      if (freed && bm_.refcount(b) == 0) freed->push_back(b);
    }
    s.blocks.clear();
    s.hashes.clear();
    s.num_computed = 0;
  }
}

void Scheduler::remove(SequenceGroup* g) {
  drop_blocks(g, nullptr);
  if (g->admitted) {
    running_.erase(std::find(running_.begin(), running_.end(), g));
    if (cfg_.policy == SchedulerPolicy::GuaranteedNoEvict) committed_ -= g->worst_case_blocks;
    g->admitted = false;
  } else {
    auto it = std::find(waiting_.begin(), waiting_.end(), g);
    if (it != waiting_.end()) waiting_.erase(it);
  }
}

void Scheduler::release(Sequence& s) {
  for (int32_t b : s.blocks) bm_.release(b);
  s.blocks.clear();
  s.hashes.clear();
}

Sequence Scheduler::fork(const Sequence& parent) {
  Sequence c = parent;
  const size_t tpb = size_t(bm_.tokens_per_block());
  c.blocks.resize(std::min(c.blocks.size(), (size_t(parent.num_computed) + tpb - 1) / tpb));
  c.hashes.resize(std::min(c.hashes.size(), c.blocks.size()));
  for (int32_t b : c.blocks) bm_.retain(b);
  return c;
}

bool Scheduler::plan_group(SequenceGroup* g, int64_t tokens_left, int64_t seqs_left,
                           std::vector<StepItem>& out) const {
  std::vector<int32_t> live;
  for (int32_t i = 0; i < int32_t(g->seqs.size()); ++i)
    if (!g->seqs[i].finished()) live.push_back(i);
  if (live.empty() || tokens_left < 1 || seqs_left < 1) return false;
  if (live.size() == 1) {
    const Sequence& s = g->seqs[live[0]];
    const int32_t n = int32_t(std::min<int64_t>(s.len() - s.num_computed, tokens_left));
    if (n < 1) return false;
    out.push_back({g, live[0], n, s.num_computed + n == s.len()});
    return true;
  }
  // Several sequences: first everything but each one's last token (chunked), then the last tokens together.
  bool context = false;
  for (int32_t i : live) context |= g->seqs[i].num_computed < g->seqs[i].len() - 1;
  if (context) {
    for (int32_t i : live) {
      const Sequence& s = g->seqs[i];
      const int64_t pending = s.len() - 1 - s.num_computed;
      if (pending <= 0) continue;
      if (tokens_left < 1 || seqs_left < 1) break;
      const int32_t n = int32_t(std::min(pending, tokens_left));
      out.push_back({g, i, n, false});
      tokens_left -= n;
      --seqs_left;
    }
    return !out.empty();
  }
  if (int64_t(live.size()) > tokens_left || int64_t(live.size()) > seqs_left) return false;
  for (int32_t i : live) out.push_back({g, i, 1, true});
  return true;
}

bool Scheduler::reserve(Sequence& s, int32_t upto, StepPlan& plan) {
  const int32_t tpb = bm_.tokens_per_block();
  for (int32_t j = s.num_computed / tpb; j <= (upto - 1) / tpb; ++j) {
    if (j < int32_t(s.blocks.size())) {
      const int32_t b = s.blocks[j];
      if (bm_.refcount(b) == 1) continue;
      const int32_t nb = bm_.allocate();  // copy-on-write: the block is shared with another sequence
      if (nb < 0) return false;
      if (j * tpb < s.num_computed) plan.copies.push_back({b, nb});
      bm_.release(b);
      s.blocks[j] = nb;
      if (int32_t(s.hashes.size()) > j) s.hashes.resize(size_t(j));
    } else {
      const int32_t nb = bm_.allocate();
      if (nb < 0) return false;
      s.blocks.push_back(nb);
    }
  }
  return true;
}

void Scheduler::drop_blocks(SequenceGroup* g, StepPlan& plan) {
  std::vector<int32_t> freed;
  drop_blocks(g, &freed);
  // A copy into a block that was just freed must not run: that block may be handed to another sequence.
  std::erase_if(plan.copies, [&](const std::pair<int32_t, int32_t>& c) {
    return std::find(freed.begin(), freed.end(), c.second) != freed.end();
  });
}

void Scheduler::preempt(SequenceGroup* g, StepPlan& plan) {
  drop_blocks(g, plan);
  running_.erase(std::find(running_.begin(), running_.end(), g));
  if (cfg_.policy == SchedulerPolicy::GuaranteedNoEvict) committed_ -= g->worst_case_blocks;
  g->admitted = false;
  insert_by_arrival(waiting_, g);
  ++preemptions_;
  ++g->preemptions;
}

int32_t Scheduler::match_prefix(Sequence& s) {
  const int32_t tpb = bm_.tokens_per_block();
  // Only blocks before the last token: at least one token must run to produce logits.
  const int32_t full = (s.len() - 1) / tpb;
  int32_t matched = 0;
  uint64_t parent = 0;
  for (int32_t j = 0; j < full; ++j) {
    const int32_t* toks = s.tokens.data() + size_t(j) * size_t(tpb);
    const uint64_t h = BlockManager::chain_hash(parent, toks, tpb);
    const int32_t b = bm_.match(h, parent, toks);
    if (b < 0) break;
    s.blocks.push_back(b);
    s.hashes.push_back(h);
    parent = h;
    ++matched;
  }
  s.num_computed = matched * tpb;
  return matched;
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int64_t tokens_left = cfg_.max_num_tokens, seqs_left = cfg_.max_batch_size;
  bool starved = false;  // a running request got nothing this step: admit no newer one (FCFS)
  auto commit = [&](std::vector<StepItem>& work) {
    for (auto& it : work) {
      tokens_left -= it.num_tokens;
      plan.num_tokens += it.num_tokens;
      plan.items.push_back(it);
    }
    seqs_left -= int64_t(work.size());
  };
  for (size_t i = 0; i < running_.size();) {
    SequenceGroup* g = running_[i];
    std::vector<StepItem> work;
    if (!plan_group(g, tokens_left, seqs_left, work)) {
      starved = true;
      ++i;
      continue;
    }
    bool self_preempted = false;
    for (auto& it : work) {
      Sequence& s = g->seqs[it.seq];
      while (!self_preempted && !reserve(s, s.num_computed + it.num_tokens, plan)) {
        SequenceGroup* victim = running_.back();  // the newest; never one scheduled earlier in this step
        self_preempted = victim == g;
        preempt(victim, plan);
      }
      if (self_preempted) break;
    }
    if (self_preempted) continue;
    commit(work);
    ++i;
  }
  if (starved) return plan;
  const int64_t pool = bm_.num_blocks();
  while (!waiting_.empty()) {
    SequenceGroup* g = waiting_.front();
    if (cfg_.policy == SchedulerPolicy::GuaranteedNoEvict && committed_ + g->worst_case_blocks > pool) break;
    int64_t matched = 0;
    if (cfg_.prefix_reuse)
      for (auto& s : g->seqs)
        if (!s.finished()) matched += match_prefix(s);
    std::vector<StepItem> work;
    bool ok = plan_group(g, tokens_left, seqs_left, work);
    for (size_t k = 0; ok && k < work.size(); ++k) {
      Sequence& s = g->seqs[work[k].seq];
      ok = reserve(s, s.num_computed + work[k].num_tokens, plan);
    }
    if (!ok) {  // not this step: give back what it took (the pool is as before, matched blocks stay cached)
      drop_blocks(g, plan);
      break;
    }
    waiting_.pop_front();
    insert_by_arrival(running_, g);
    g->admitted = true;
    if (!g->ever_admitted) {
      g->ever_admitted = true;
      g->first_admitted = std::chrono::steady_clock::now();
    }
    if (cfg_.policy == SchedulerPolicy::GuaranteedNoEvict) committed_ += g->worst_case_blocks;
    reused_blocks_ += matched;
    commit(work);
  }
  return plan;
}

void Scheduler::complete(const StepPlan& plan) {
  const int32_t tpb = bm_.tokens_per_block();
  for (const auto& it : plan.items) {
    Sequence& s = it.group->seqs[it.seq];
    s.num_computed += it.num_tokens;
    if (!cfg_.prefix_reuse) continue;
    for (size_t j = s.hashes.size(); int32_t(j + 1) * tpb <= s.num_computed; ++j) {
      const uint64_t parent = j ? s.hashes[j - 1] : 0;
      const int32_t* toks = s.tokens.data() + j * size_t(tpb);
      const uint64_t h = BlockManager::chain_hash(parent, toks, tpb);
      bm_.publish(s.blocks[j], h, parent, toks);
      s.hashes.push_back(h);
    }
  }
}

}  // namespace kiln
