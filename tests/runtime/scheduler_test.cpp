// Scheduler decisions without a model: FCFS under the token and sequence budgets, chunked context, admission by
// policy, preemption of the newest request, copy-on-write of shared blocks, prefix reuse.
#include "runtime/scheduler.h"

#include <gtest/gtest.h>

#include <memory>
#include <numeric>

namespace kiln {
namespace {

struct Harness {
  BlockManager bm;
  Scheduler sched;
  std::vector<std::unique_ptr<SequenceGroup>> groups;
  Harness(int32_t blocks, int32_t tpb, SchedulerConfig cfg) : bm(blocks, tpb), sched(cfg, bm) {}

  SequenceGroup* add(int32_t prompt_len, int32_t max_new, int32_t first_token = 100) {
    auto g = std::make_unique<SequenceGroup>();
    g->id = g->arrival = groups.size() + 1;
    g->req.max_new_tokens = max_new;
    g->prompt_len = prompt_len;
    Sequence s;
    s.tokens.resize(size_t(prompt_len));
    std::iota(s.tokens.begin(), s.tokens.end(), first_token);
    g->seqs.push_back(std::move(s));
    g->worst_case_blocks = sched.worst_case_blocks(1, prompt_len, max_new);
    sched.add(g.get());
    groups.push_back(std::move(g));
    return groups.back().get();
  }
  // Runs the plan as the executor would: every sequence that got logits generates one token.
  StepPlan step() {
    StepPlan p = sched.schedule();
    sched.complete(p);
    for (auto& it : p.items)
      if (it.logits) it.group->seqs[it.seq].tokens.push_back(7);
    return p;
  }
};

int tokens_of(const StepPlan& p, const SequenceGroup* g) {
  int n = 0;
  for (auto& it : p.items) n += it.group == g ? it.num_tokens : 0;
  return n;
}

SchedulerConfig config(SchedulerPolicy policy, int64_t tokens, int64_t seqs, bool reuse = false) {
  SchedulerConfig c;
  c.policy = policy;
  c.max_num_tokens = tokens;
  c.max_batch_size = seqs;
  c.prefix_reuse = reuse;
  return c;
}

TEST(Scheduler, ChunksPromptsUnderTheTokenBudgetInArrivalOrder) {
  Harness h(64, 4, config(SchedulerPolicy::GuaranteedNoEvict, 16, 8));
  auto* a = h.add(10, 4);
  auto* b = h.add(10, 4);
  auto* c = h.add(10, 4);
  StepPlan p = h.step();
  EXPECT_EQ(tokens_of(p, a), 10);  // a whole, with logits
  EXPECT_EQ(tokens_of(p, b), 6);   // b's first chunk
  EXPECT_EQ(tokens_of(p, c), 0);   // FCFS: c waits
  EXPECT_EQ(p.num_tokens, 16);
  p = h.step();
  EXPECT_EQ(tokens_of(p, a), 1);  // generating
  EXPECT_EQ(tokens_of(p, b), 4);  // the rest of b's prompt
  EXPECT_EQ(tokens_of(p, c), 10);
  EXPECT_EQ(h.sched.num_running(), 3);
}

TEST(Scheduler, SequenceBudgetLimitsTheBatch) {
  Harness h(64, 4, config(SchedulerPolicy::GuaranteedNoEvict, 100, 2));
  auto* a = h.add(3, 4);
  auto* b = h.add(3, 4);
  auto* c = h.add(3, 4);
  StepPlan p = h.step();
  EXPECT_EQ(p.items.size(), 2u);
  EXPECT_EQ(tokens_of(p, c), 0);
  h.sched.remove(a);
  p = h.step();
  EXPECT_EQ(tokens_of(p, b), 1);
  EXPECT_EQ(tokens_of(p, c), 3);
}

TEST(Scheduler, NoEvictAdmitsOnlyWhatCanFinish) {
  Harness h(10, 4, config(SchedulerPolicy::GuaranteedNoEvict, 100, 8));
  auto* a = h.add(12, 13);  // 24 KV tokens: 6 blocks
  auto* b = h.add(12, 13);
  EXPECT_EQ(a->worst_case_blocks, 6);
  StepPlan p = h.step();
  EXPECT_EQ(tokens_of(p, a), 12);
  EXPECT_EQ(tokens_of(p, b), 0);  // 6 + 6 > 10 although its prompt would fit now
  for (int i = 0; i < 12; ++i) h.step();
  EXPECT_EQ(h.sched.preemptions(), 0);
  h.sched.remove(a);
  EXPECT_EQ(h.bm.num_used(), 0);
  EXPECT_EQ(tokens_of(h.step(), b), 12);
}

TEST(Scheduler, MaxUtilizationPreemptsTheNewestAndResumesIt) {
  Harness h(6, 4, config(SchedulerPolicy::MaxUtilization, 100, 8));
  auto* a = h.add(8, 12);  // grows to 19 KV tokens: 5 blocks
  auto* b = h.add(8, 12);
  StepPlan p = h.step();
  EXPECT_EQ(tokens_of(p, a), 8);
  EXPECT_EQ(tokens_of(p, b), 8);
  EXPECT_EQ(h.bm.num_used(), 4);
  int steps = 0;
  while (h.sched.preemptions() == 0 && steps++ < 20) h.step();
  ASSERT_EQ(h.sched.preemptions(), 1);
  EXPECT_FALSE(b->admitted);  // the newest went back to the queue, its KV dropped
  EXPECT_EQ(b->seqs[0].num_computed, 0);
  EXPECT_TRUE(b->seqs[0].blocks.empty());
  EXPECT_GT(b->seqs[0].len(), 8);  // its generated tokens are kept
  EXPECT_TRUE(a->admitted);
  // a finishes; b resumes by recomputing prompt + generated tokens in one chunk.
  h.sched.remove(a);
  const int len = b->seqs[0].len();
  p = h.step();
  EXPECT_EQ(tokens_of(p, b), len);
  EXPECT_TRUE(p.items.back().logits);
}

TEST(Scheduler, ForkSharesBlocksAndCopiesOnWrite) {
  Harness h(16, 4, config(SchedulerPolicy::MaxUtilization, 100, 8));
  auto* g = h.add(6, 4);  // 6 tokens: block 0 full, block 1 half
  h.step();
  Sequence& s = g->seqs[0];
  ASSERT_EQ(s.num_computed, 6);
  ASSERT_EQ(s.blocks.size(), 2u);
  Sequence c = h.sched.fork(s);
  EXPECT_EQ(c.blocks, s.blocks);
  EXPECT_EQ(h.bm.refcount(s.blocks[1]), 2);
  g->seqs.push_back(c);
  g->seqs[1].tokens.back() = 8;  // the two now differ in their 7th token
  g->forked = true;
  StepPlan p = h.sched.schedule();
  ASSERT_EQ(p.items.size(), 2u);
  ASSERT_EQ(p.copies.size(), 1u);  // the first writer copies the shared half block; the second owns it then
  EXPECT_EQ(p.copies[0].first, g->seqs[1].blocks[1]);
  EXPECT_EQ(p.copies[0].second, g->seqs[0].blocks[1]);
  EXPECT_NE(g->seqs[0].blocks[1], g->seqs[1].blocks[1]);
  EXPECT_EQ(g->seqs[0].blocks[0], g->seqs[1].blocks[0]);  // the full block stays shared
  EXPECT_EQ(h.bm.refcount(g->seqs[0].blocks[0]), 2);
  h.sched.remove(g);
  EXPECT_EQ(h.bm.num_used(), 0);
}

TEST(Scheduler, PrefixReuseSkipsCachedBlocks) {
  Harness h(16, 4, config(SchedulerPolicy::MaxUtilization, 100, 8, /*reuse=*/true));
  auto* a = h.add(9, 2);  // tokens 100..108: blocks [100..103] [104..107] become full
  h.step();
  EXPECT_EQ(h.bm.num_cached(), 2);
  auto* b = h.add(9, 2);  // the same prompt
  StepPlan p = h.step();
  EXPECT_EQ(tokens_of(p, b), 1);  // 8 of 9 tokens came from the cache
  EXPECT_EQ(b->seqs[0].num_computed, 9);
  EXPECT_EQ(h.sched.reused_blocks(), 2);
  EXPECT_EQ(b->seqs[0].blocks[0], a->seqs[0].blocks[0]);
  auto* c = h.add(9, 2, 200);  // another prompt: nothing to reuse
  p = h.step();
  EXPECT_EQ(tokens_of(p, c), 9);
  EXPECT_EQ(h.sched.reused_blocks(), 2);
}

}  // namespace
}  // namespace kiln
