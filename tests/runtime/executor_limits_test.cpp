// Requests over a limit are rejected with a clear error while the executor keeps serving; cancellation returns
// `cancelled` and gives every block back; bad configurations are refused.
#include <gtest/gtest.h>

#include "core/error.h"
#include "runtime/kv_cache.h"
#include "runtime_fixtures.h"

namespace kiln::test {
namespace {

TestEngineLimits small_limits() {
  TestEngineLimits l;
  l.max_batch_size = 4;
  l.max_seq_len = 64;
  l.max_input_len = 32;
  l.max_beam_width = 2;
  return l;
}

// The error message of enqueue(r), or "" when it was accepted.
std::string rejection(Executor& ex, const Request& r) {
  try {
    ex.enqueue(r);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Request basic(int P, int N) {
  Request r;
  for (int i = 0; i < P; ++i) r.input_ids.push_back(int32_t(10 + i));
  r.max_new_tokens = N;
  r.end_id = -1;
  return r;
}

TEST(ExecutorLimits, OverLimitRequestsAreRejectedWhileOthersRun) {
  Engine& e = engine_for("llama", small_limits());
  Request good = basic(8, 50);
  good.streaming = true;
  Outcome ref;
  {
    Executor ex(e, {});
    ref = run_one(ex, good);
  }
  Executor ex(e, {});
  const RequestId id = ex.enqueue(good);
  Outcome o;
  for (auto& resp : ex.await_responses(id)) absorb(o, resp);  // it is running
  ASSERT_GT(o.responses, 0);

  auto expect_rejected = [&](Request r, const std::string& what) {
    const std::string msg = rejection(ex, r);
    EXPECT_NE(msg.find(what), std::string::npos) << "message: '" << msg << "', expected it to mention '" << what << "'";
  };
  expect_rejected(basic(33, 4), "exceeds the engine's max_input_len 32");
  expect_rejected(basic(30, 40), "= 70 exceeds the engine's max_seq_len 64");
  expect_rejected(basic(0, 4), "the prompt is empty");
  expect_rejected(basic(4, 0), "max_new_tokens 0");
  Request r = basic(4, 4);
  r.input_ids[2] = 384;
  expect_rejected(r, "input_ids[2] = 384 is outside the vocabulary (size 384)");
  r = basic(4, 4);
  r.beam_width = 3;
  expect_rejected(r, "beam_width 3 exceeds the engine's max_beam_width 2");
  r.beam_width = 2;
  r.num_return_sequences = 3;
  expect_rejected(r, "num_return_sequences 3 exceeds beam_width 2");
  r.num_return_sequences = 1;
  r.streaming = true;
  expect_rejected(r, "streaming is not supported with beam search");
  r.streaming = false;
  r.sampling.temperature = 0.5f;
  expect_rejected(r, "beam search (beam_width 2) does not sample");
  r = basic(4, 4);
  r.num_return_sequences = 2;
  expect_rejected(r, "needs sampling (temperature > 0)");
  r.sampling.temperature = 1.0f;
  r.num_return_sequences = 5;
  expect_rejected(r, "num_return_sequences 5 exceeds the 4 sequences a step can hold");
  r = basic(4, 4);
  r.sampling.temperature = -1.0f;
  expect_rejected(r, "temperature -1");
  r.sampling.temperature = 1.0f;
  r.sampling.top_p = 0.0f;
  expect_rejected(r, "top_p 0: must be in (0, 1]");
  r.sampling.top_p = 1.0f;
  r.sampling.top_k = -2;
  expect_rejected(r, "top_k -2");
  r.sampling.top_k = 0;
  r.sampling.repetition_penalty = 0.0f;
  expect_rejected(r, "repetition_penalty 0");
  r = basic(4, 4);
  r.stop_sequences = {{}};
  expect_rejected(r, "stop_sequences[0] is empty");
  r.stop_sequences = {{1, 999}};
  expect_rejected(r, "stop_sequences[0][1] = 999 is outside the vocabulary");
  r.stop_sequences.clear();
  r.bad_words = {{-1}};
  expect_rejected(r, "bad_words[0][0] = -1");
  r.bad_words.clear();
  r.end_id = 400;
  expect_rejected(r, "end_id 400 is outside the vocabulary");

  // The running request is unaffected, and the executor still takes new work.
  while (o.finals == 0) {
    auto rs = ex.await_responses(id, std::chrono::milliseconds(60000));
    ASSERT_FALSE(rs.empty());
    for (auto& resp : rs) absorb(o, resp);
  }
  EXPECT_EQ(o.ids, ref.ids);
  EXPECT_EQ(o.reasons, ref.reasons);
  Outcome after = run_one(ex, basic(5, 6));
  EXPECT_EQ(after.ids[0].size(), 6u);
}

TEST(ExecutorLimits, RequestBiggerThanThePoolIsRejected) {
  Engine& e = engine_for("llama", small_limits());
  ExecutorConfig c;
  c.tokens_per_block = 8;
  c.kv_cache_bytes = 4 * int64_t(kv_block_bytes(e.model(), DType::F32, 8));
  Executor ex(e, c);
  EXPECT_EQ(ex.num_kv_blocks(), 4);
  const std::string msg = rejection(ex, basic(30, 10));  // 39 KV tokens: 5 blocks
  EXPECT_NE(msg.find("needs up to 5 KV blocks"), std::string::npos) << msg;
  EXPECT_NE(msg.find("holds 4"), std::string::npos) << msg;
  EXPECT_EQ(run_one(ex, basic(20, 10)).ids[0].size(), 10u);  // 29 KV tokens: 4 blocks fit
}

TEST(ExecutorLimits, AFailingRequestGetsAnErrorAndOthersContinue) {
  Engine& e = engine_for("llama", small_limits());
  Executor ex(e, {});
  Request doomed = basic(6, 5);
  for (int32_t t = 0; t < 384; ++t) doomed.bad_words.push_back({t});  // nothing can be generated
  const RequestId bad = ex.enqueue(doomed);
  const RequestId ok = ex.enqueue(basic(7, 9));
  auto out = collect(ex, {bad, ok});
  EXPECT_NE(out[bad].error.find("every logit is -inf"), std::string::npos) << out[bad].error;
  EXPECT_EQ(out[bad].reasons, std::vector<FinishReason>{FinishReason::Error});
  EXPECT_TRUE(out[ok].error.empty());
  EXPECT_EQ(out[ok].ids[0].size(), 9u);
  EXPECT_EQ(ex.stats().kv_blocks_used, 0);
}

TEST(ExecutorLimits, BadConfigurationsAreRefused) {
  Engine& e = engine_for("llama", small_limits());
  auto refused = [&](ExecutorConfig c, const std::string& what) {
    try {
      Executor ex(e, c);
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find(what), std::string::npos) << err.what();
      return;
    }
    ADD_FAILURE() << "accepted; expected an error mentioning '" << what << "'";
  };
  ExecutorConfig c;
  c.max_num_tokens = e.limits().max_num_tokens + 1;
  refused(c, "--max-num-tokens");
  c = {};
  c.max_batch_size = 5;
  refused(c, "--max-batch-size 5");
  c = {};
  c.kv_cache_bytes = 100;
  refused(c, "smaller than one KV block");
  c = {};
  c.kv_cache_fraction = 0;
  refused(c, "--kv-cache-fraction 0");
  c = {};
  c.tokens_per_block = 0;
  refused(c, "--tokens-per-block 0");
}

TEST(ExecutorLimits, CancellationMidGenerationFreesEveryBlock) {
  Engine& e = engine_for("llama");
  Executor ex(e, {});
  std::vector<RequestId> ids;
  for (int i = 0; i < 8; ++i) {
    Request r = basic(10 + i, 100);
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

TEST(ExecutorLimits, CancellingQueuedRequestsAndBeamSearches) {
  Engine& e = engine_for("llama");
  ExecutorConfig c;
  c.tokens_per_block = 8;
  c.kv_cache_bytes = 20 * int64_t(kv_block_bytes(e.model(), DType::F32, 8));  // one request at a time (15 or 18)
  Executor ex(e, c);
  std::vector<RequestId> ids;
  for (int i = 0; i < 6; ++i) {
    Request r = basic(30, 90);
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

}  // namespace
}  // namespace kiln::test
