// Executor scenarios shared by the cpu tests (tests/runtime) and the cuda batch-invariant tests
// (tests/backend_cuda/invariant_executor_test.cpp), run on any loaded engine:
//  - independence: 16 requests of different prompt and output lengths (greedy, seeded sampling, several samples, a
//    beam search) run concurrently give exactly the tokens, log-probs and beam scores each gives alone -- under both
//    policies, with a KV pool so small that requests are preempted and recomputed, with chunked context
//    (max_num_tokens below the longest prompt), and with prefix reuse over shared prefixes;
//  - cancellation mid-generation (every block comes back) and of queued requests and beam searches.
#pragma once
#include <gtest/gtest.h>

#include "runtime/kv_cache.h"
#include "runtime_fixtures.h"

namespace kiln::test {

constexpr int kLongestPrompt = 60;

inline std::vector<Request> independence_workload(int64_t vocab) {
  std::mt19937 rng(11);
  const std::vector<int32_t> shared = random_ids(rng, 48, vocab);  // a common prefix for half the prompts
  const int prompt_len[16] = {1, 3, 7, 12, 20, 33, 45, kLongestPrompt, 2, 9, 17, 26, 38, 50, 5, 41};
  const int new_tokens[16] = {1, 24, 8, 16, 3, 24, 12, 5, 20, 2, 24, 7, 14, 9, 18, 11};
  std::vector<Request> reqs;
  for (int i = 0; i < 16; ++i) {
    Request r;
    const int P = prompt_len[i];
    if (i % 2 == 1 && P > 8) {
      r.input_ids.assign(shared.begin(), shared.begin() + std::min(P - 4, 48));
      auto tail = random_ids(rng, P - int(r.input_ids.size()), vocab);
      r.input_ids.insert(r.input_ids.end(), tail.begin(), tail.end());
    } else {
      r.input_ids = random_ids(rng, P, vocab);
    }
    r.max_new_tokens = new_tokens[i];
    if (i % 3 != 0) {  // seeded sampling with a mix of filters and penalties
      r.sampling.temperature = 0.6f + 0.1f * float(i % 5);
      r.sampling.top_k = (i % 4) * 10;
      r.sampling.top_p = i % 2 ? 0.9f : 1.0f;
      r.sampling.min_p = i % 5 == 0 ? 0.05f : 0.0f;
      r.sampling.repetition_penalty = i % 7 == 1 ? 1.2f : 1.0f;
      r.sampling.frequency_penalty = i % 7 == 2 ? 0.3f : 0.0f;
      r.sampling.seed = uint64_t(1000 + i);
    }
    if (i == 4) r.num_return_sequences = 2;
    if (i == 9) {
      r.beam_width = 2;
      r.num_return_sequences = 2;
    }
    r.return_log_probs = i % 2 == 0;
    r.streaming = i % 4 == 3;
    reqs.push_back(std::move(r));
  }
  return reqs;
}

inline std::vector<Outcome> run_alone(Engine& e, const std::vector<Request>& reqs) {
  Executor ex(e, {});
  std::vector<Outcome> out;
  for (auto& r : reqs) out.push_back(run_one(ex, r));
  return out;
}

// Runs reqs concurrently under cfg and expects each request's outcome to equal ref (its run alone), bit for bit.
inline Stats run_together(Engine& e, const ExecutorConfig& cfg, const std::vector<Request>& reqs,
                          const std::vector<Outcome>& ref) {
  Executor ex(e, cfg);
  std::vector<RequestId> ids;
  for (auto& r : reqs) ids.push_back(ex.enqueue(r));
  auto out = collect(ex, ids);
  for (size_t i = 0; i < reqs.size(); ++i) {
    const Outcome& o = out[ids[i]];
    EXPECT_TRUE(o.error.empty()) << "request " << i << ": " << o.error;
    EXPECT_EQ(o.ids, ref[i].ids) << "request " << i << " differs from its run alone";
    EXPECT_EQ(o.log_probs, ref[i].log_probs) << "request " << i << ": log-probs differ from its run alone";
    EXPECT_EQ(o.scores, ref[i].scores) << "request " << i << ": beam scores differ from its run alone";
    EXPECT_EQ(o.reasons, ref[i].reasons) << "request " << i;
    EXPECT_EQ(o.finals, 1) << "request " << i;
  }
  Stats st = ex.stats();
  EXPECT_EQ(st.kv_blocks_used, 0) << "blocks leaked";
  EXPECT_EQ(st.running_requests + st.queued_requests, 0);
  return st;
}

// The independence workload alone, then together in every scenario.
inline void check_independence(Engine& e) {
  const auto reqs = independence_workload(e.model().vocab_size);
  const auto ref = run_alone(e, reqs);
  for (size_t i = 0; i < reqs.size(); ++i) ASSERT_TRUE(ref[i].error.empty()) << ref[i].error;

  {
    SCOPED_TRACE("guaranteed_no_evict");
    run_together(e, {}, reqs, ref);
  }
  {
    SCOPED_TRACE("max_utilization");
    ExecutorConfig c;
    c.policy = SchedulerPolicy::MaxUtilization;
    Stats st = run_together(e, c, reqs, ref);
    EXPECT_GT(st.kv_blocks_peak, 0);
  }
  const int64_t block8 = int64_t(kv_block_bytes(e.model(), e.backend().compute_dtype(), 8));
  {
    SCOPED_TRACE("max_utilization, tiny pool");
    ExecutorConfig c;
    c.policy = SchedulerPolicy::MaxUtilization;
    c.tokens_per_block = 8;
    c.kv_cache_bytes = 12 * block8;  // the largest request alone needs 8 blocks of 8 tokens
    Stats st = run_together(e, c, reqs, ref);
    EXPECT_GT(st.preemptions, 0) << "the pool was meant to force preemption";
    EXPECT_LE(st.kv_blocks_peak, 12);
  }
  {
    SCOPED_TRACE("guaranteed_no_evict, tiny pool");
    ExecutorConfig c;
    c.tokens_per_block = 8;
    c.kv_cache_bytes = 12 * block8;
    Stats st = run_together(e, c, reqs, ref);
    EXPECT_EQ(st.preemptions, 0);
  }
  {
    SCOPED_TRACE("chunked context");
    ExecutorConfig c;
    c.max_num_tokens = 16;  // below the longest prompt (60)
    c.tokens_per_block = 16;
    Stats st = run_together(e, c, reqs, ref);
    EXPECT_LE(st.total_step_tokens, st.steps * 16);
  }
  {
    SCOPED_TRACE("prefix reuse");
    ExecutorConfig c;
    c.policy = SchedulerPolicy::MaxUtilization;
    c.enable_prefix_reuse = true;
    c.tokens_per_block = 8;
    c.max_num_tokens = 64;  // prompts are admitted over several steps, after shared blocks are published
    Stats st = run_together(e, c, reqs, ref);
    EXPECT_GT(st.reused_blocks, 0) << "shared prefixes should have been served from the cache";
    EXPECT_GT(st.kv_blocks_cached, 0);
  }
}

// A prompt 10, 11, ... of P tokens with N new tokens and no end id.
inline Request basic_request(int P, int N) {
  Request r;
  for (int i = 0; i < P; ++i) r.input_ids.push_back(int32_t(10 + i));
  r.max_new_tokens = N;
  r.end_id = -1;
  return r;
}

// Eight requests cancelled once generation has started: each ends `cancelled` (with the tokens so far) or had
// already finished; every block comes back. Needs max_batch_size >= 8 and max_seq_len >= 117.
inline void check_cancellation_mid_generation(Engine& e) {
  Executor ex(e, {});
  std::vector<RequestId> ids;
  for (int i = 0; i < 8; ++i) {
    Request r = basic_request(10 + i, 100);
    r.streaming = i % 2 == 0;
    ids.push_back(ex.enqueue(r));
  }
  ASSERT_FALSE(ex.await_responses(ids[0]).empty());  // generation has started
  EXPECT_GT(ex.stats().kv_blocks_used, 0);
  for (auto id : ids) EXPECT_TRUE(ex.cancel(id));
  auto out = collect(ex, ids);
  int cancelled = 0;
  for (auto id : ids) {
    const Outcome& o = out[id];
    EXPECT_EQ(o.finals, 1);
    ASSERT_EQ(o.reasons.size(), 1u);
    if (o.reasons[0] == FinishReason::Cancelled) {
      ++cancelled;
      EXPECT_LT(o.ids[0].size(), 100u);  // the tokens generated so far
    } else {
      EXPECT_EQ(o.reasons[0], FinishReason::Length);
    }
  }
  EXPECT_GT(cancelled, 0);
  const Stats st = ex.stats();
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total);
  EXPECT_EQ(st.running_requests + st.queued_requests, 0);
  EXPECT_FALSE(ex.cancel(ids[0]));  // already final
  EXPECT_FALSE(ex.cancel(12345));   // never issued
  EXPECT_TRUE(ex.await_responses(ids[0]).empty());  // nothing more will come: no wait
  EXPECT_TRUE(ex.await_responses(12345).empty());
}

// Six requests in a pool that holds one at a time; the five queued ones (one a beam search) are cancelled before
// they start. Needs max_beam_width >= 2 and max_seq_len >= 120.
inline void check_cancelling_queued(Engine& e) {
  ExecutorConfig c;
  c.tokens_per_block = 8;
  c.kv_cache_bytes = 20 * int64_t(kv_block_bytes(e.model(), e.backend().compute_dtype(), 8));  // 15 or 18 a request
  Executor ex(e, c);
  std::vector<RequestId> ids;
  for (int i = 0; i < 6; ++i) {
    Request r = basic_request(30, 90);
    if (i == 1) {
      r.beam_width = 2;
      r.max_new_tokens = 40;
    }
    ids.push_back(ex.enqueue(r));
  }
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_TRUE(ex.cancel(ids[i]));
  auto out = collect(ex, ids);
  EXPECT_EQ(out[ids[0]].reasons[0], FinishReason::Length);
  for (size_t i = 1; i < ids.size(); ++i) {
    EXPECT_EQ(out[ids[i]].finals, 1);
    for (auto reason : out[ids[i]].reasons) EXPECT_EQ(reason, FinishReason::Cancelled) << "request " << i;
  }
  EXPECT_EQ(out[ids[1]].ids.size(), 1u);  // beams: the one returned sequence, empty when cancelled
  EXPECT_EQ(ex.stats().kv_blocks_used, 0);
}

}  // namespace kiln::test
