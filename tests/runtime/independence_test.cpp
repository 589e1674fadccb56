// Independence: for every fixture model, 16 requests of different prompt and output lengths (greedy, seeded
// sampling, several samples, a beam search) run concurrently give exactly the tokens each gives alone -- under
// both policies, with a KV pool so small that requests are preempted and recomputed, with chunked context
// (max_num_tokens below the longest prompt), and with prefix reuse over shared prefixes.
#include <gtest/gtest.h>

#include "runtime/kv_cache.h"
#include "runtime_fixtures.h"

namespace kiln::test {
namespace {

constexpr int kLongestPrompt = 60;

std::vector<Request> workload(int64_t vocab) {
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

std::vector<Outcome> alone(Engine& e, const std::vector<Request>& reqs) {
  Executor ex(e, {});
  std::vector<Outcome> out;
  for (auto& r : reqs) out.push_back(run_one(ex, r));
  return out;
}

Stats together(Engine& e, const ExecutorConfig& cfg, const std::vector<Request>& reqs, const std::vector<Outcome>& ref) {
  Executor ex(e, cfg);
  std::vector<RequestId> ids;
  for (auto& r : reqs) ids.push_back(ex.enqueue(r));
  auto out = collect(ex, ids);
  for (size_t i = 0; i < reqs.size(); ++i) {
    const Outcome& o = out[ids[i]];
    EXPECT_TRUE(o.error.empty()) << "request " << i << ": " << o.error;
    EXPECT_EQ(o.ids, ref[i].ids) << "request " << i << " differs from its run alone";
    EXPECT_EQ(o.reasons, ref[i].reasons) << "request " << i;
    EXPECT_EQ(o.finals, 1) << "request " << i;
  }
  Stats st = ex.stats();
  EXPECT_EQ(st.kv_blocks_used, 0) << "blocks leaked";
  EXPECT_EQ(st.running_requests + st.queued_requests, 0);
  return st;
}

class Independence : public ::testing::TestWithParam<std::string> {};

TEST_P(Independence, ConcurrentEqualsAlone) {
  Engine& e = engine_for(GetParam());
  const auto reqs = workload(e.model().vocab_size);
  const auto ref = alone(e, reqs);
  for (size_t i = 0; i < reqs.size(); ++i) ASSERT_TRUE(ref[i].error.empty()) << ref[i].error;

  {
    SCOPED_TRACE("guaranteed_no_evict");
    together(e, {}, reqs, ref);
  }
  {
    SCOPED_TRACE("max_utilization");
    ExecutorConfig c;
    c.policy = SchedulerPolicy::MaxUtilization;
    Stats st = together(e, c, reqs, ref);
    EXPECT_GT(st.kv_blocks_peak, 0);
  }
  const int64_t block8 = int64_t(kv_block_bytes(e.model(), DType::F32, 8));
  {
    SCOPED_TRACE("max_utilization, tiny pool");
    ExecutorConfig c;
    c.policy = SchedulerPolicy::MaxUtilization;
    c.tokens_per_block = 8;
    c.kv_cache_bytes = 12 * block8;  // the largest request alone needs 8 blocks of 8 tokens
    Stats st = together(e, c, reqs, ref);
    EXPECT_GT(st.preemptions, 0) << "the pool was meant to force preemption";
    EXPECT_LE(st.kv_blocks_peak, 12);
  }
  {
    SCOPED_TRACE("guaranteed_no_evict, tiny pool");
    ExecutorConfig c;
    c.tokens_per_block = 8;
    c.kv_cache_bytes = 12 * block8;
    Stats st = together(e, c, reqs, ref);
    EXPECT_EQ(st.preemptions, 0);
  }
  {
    SCOPED_TRACE("chunked context");
    ExecutorConfig c;
    c.max_num_tokens = 16;  // below the longest prompt (60)
    c.tokens_per_block = 16;
    Stats st = together(e, c, reqs, ref);
    EXPECT_LE(st.total_step_tokens, st.steps * 16);
  }
  {
    SCOPED_TRACE("prefix reuse");
    ExecutorConfig c;
    c.policy = SchedulerPolicy::MaxUtilization;
    c.enable_prefix_reuse = true;
    c.tokens_per_block = 8;
    c.max_num_tokens = 64;  // prompts are admitted over several steps, after shared blocks are published
    Stats st = together(e, c, reqs, ref);
    EXPECT_GT(st.reused_blocks, 0) << "shared prefixes should have been served from the cache";
    EXPECT_GT(st.kv_blocks_cached, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, Independence, ::testing::ValuesIn(fixture_models()), [](const auto& info) {
  std::string n = info.param;
  for (auto& ch : n)
    if (ch == '-') ch = '_';
  return n;
});

}  // namespace
}  // namespace kiln::test
