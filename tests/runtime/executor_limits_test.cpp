// Requests over a limit are rejected with a clear error while the executor keeps serving; cancellation returns
// `cancelled` and gives every block back (executor_scenarios.h, shared with the cuda tests); bad configurations
// are refused.
#include <gtest/gtest.h>

#include "core/error.h"
#include "common/test_util.h"
#include "executor_scenarios.h"

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

TEST(ExecutorLimits, OverLimitRequestsAreRejectedWhileOthersRun) {
  Engine& e = engine_for("llama", small_limits());
  Request good = basic_request(8, 50);
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
    const std::string checked = error_of([&] { ex.check(r); });  // check() refuses it as enqueue does
    const std::string msg = rejection(ex, r);
    EXPECT_EQ(checked, msg);
    EXPECT_NE(msg.find(what), std::string::npos) << "message: '" << msg << "', expected it to mention '" << what << "'";
  };
  expect_rejected(basic_request(33, 4), "exceeds the engine's max_input_len 32");
  expect_rejected(basic_request(30, 40), "= 70 exceeds the engine's max_seq_len 64");
  expect_rejected(basic_request(0, 4), "the prompt is empty");
  expect_rejected(basic_request(4, 0), "max_new_tokens 0");
  Request r = basic_request(4, 4);
  r.input_ids[2] = 384;
  expect_rejected(r, "input_ids[2] = 384 is outside the vocabulary (size 384)");
  r = basic_request(4, 4);
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
  r = basic_request(4, 4);
  r.num_return_sequences = 2;
  expect_rejected(r, "needs sampling (temperature > 0)");
  r.sampling.temperature = 1.0f;
  r.num_return_sequences = 5;
  expect_rejected(r, "num_return_sequences 5 exceeds the 4 sequences a step can hold");
  r = basic_request(4, 4);
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
  r = basic_request(4, 4);
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
  const int64_t completed = ex.stats().completed_requests;
  EXPECT_EQ(error_of([&] { ex.check(basic_request(5, 6)); }), "");  // accepted, and nothing queued
  EXPECT_EQ(ex.stats().queued_requests + ex.stats().running_requests, 0);
  EXPECT_EQ(ex.stats().completed_requests, completed);
  Outcome after = run_one(ex, basic_request(5, 6));
  EXPECT_EQ(after.ids[0].size(), 6u);
}

TEST(ExecutorLimits, RequestBiggerThanThePoolIsRejected) {
  Engine& e = engine_for("llama", small_limits());
  ExecutorConfig c;
  c.tokens_per_block = 8;
  c.kv_cache_bytes = 4 * int64_t(kv_block_bytes(e.model(), DType::F32, 8));
  Executor ex(e, c);
  EXPECT_EQ(ex.num_kv_blocks(), 4);
  const std::string msg = rejection(ex, basic_request(30, 10));  // 39 KV tokens: 5 blocks
  EXPECT_NE(msg.find("needs up to 5 KV blocks"), std::string::npos) << msg;
  EXPECT_NE(msg.find("holds 4"), std::string::npos) << msg;
  EXPECT_EQ(run_one(ex, basic_request(20, 10)).ids[0].size(), 10u);  // 29 KV tokens: 4 blocks fit
}

TEST(ExecutorLimits, AFailingRequestGetsAnErrorAndOthersContinue) {
  Engine& e = engine_for("llama", small_limits());
  Executor ex(e, {});
  Request doomed = basic_request(6, 5);
  for (int32_t t = 0; t < 384; ++t) doomed.bad_words.push_back({t});  // nothing can be generated
  const RequestId bad = ex.enqueue(doomed);
  const RequestId ok = ex.enqueue(basic_request(7, 9));
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
  check_cancellation_mid_generation(engine_for("llama"));
}

TEST(ExecutorLimits, CancellingQueuedRequestsAndBeamSearches) { check_cancelling_queued(engine_for("llama")); }

}  // namespace
}  // namespace kiln::test
