// Soak: 2,000 short requests with random parameters (greedy, sampling with filters and penalties, several
// samples, beam search, stop sequences, bad words, streaming, log-probs) enqueued from one thread while another
// awaits responses and cancels about one in eight at random moments, on a pool small enough to preempt.
// Nothing may be lost: every id gets exactly one final response, its outputs respect its limits, and at the
// end every KV block is free.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "runtime/kv_cache.h"
#include "runtime_fixtures.h"

namespace kiln::test {
namespace {

Request random_request(std::mt19937& rng, int64_t vocab) {
  auto pick = [&](int n) { return int(rng() % uint32_t(n)); };
  Request r;
  r.input_ids = random_ids(rng, 1 + pick(40), vocab);
  r.max_new_tokens = 1 + pick(12);
  if (pick(2)) r.end_id = pick(3) ? int32_t(pick(int(vocab))) : -1;
  switch (pick(6)) {
    case 0:
      break;  // greedy
    case 1:
      r.beam_width = 2 + pick(3);
      r.num_return_sequences = 1 + pick(r.beam_width);
      r.sampling.length_penalty = float(pick(3)) * 0.5f;
      r.sampling.early_stopping = EarlyStopping(pick(3));
      break;
    default:
      r.sampling.temperature = 0.3f + 0.3f * float(pick(5));
      r.sampling.top_k = pick(3) ? 0 : 1 + pick(50);
      r.sampling.top_p = pick(2) ? 1.0f : 0.5f + 0.1f * float(pick(5));
      r.sampling.min_p = pick(3) ? 0.0f : 0.1f;
      if (pick(4) == 0) r.num_return_sequences = 2 + pick(2);
      if (pick(2)) r.sampling.seed = rng();
      r.streaming = pick(2);
  }
  if (pick(4) == 0) r.sampling.repetition_penalty = 1.0f + 0.1f * float(1 + pick(5));
  if (pick(5) == 0) r.sampling.presence_penalty = 0.5f;
  if (pick(5) == 0) r.sampling.frequency_penalty = 0.2f;
  if (pick(5) == 0) r.stop_sequences = {{int32_t(pick(int(vocab)))}, {int32_t(pick(int(vocab))), int32_t(pick(int(vocab)))}};
  if (pick(5) == 0) r.bad_words = {{int32_t(pick(int(vocab)))}};
  if (pick(3) == 0) r.return_log_probs = true;
  if (pick(6) == 0) r.sampling.ignore_eos = true;
  return r;
}

class Soak : public ::testing::TestWithParam<std::string> {};

TEST_P(Soak, TwoThousandRequestsNothingLostNothingLeaked) {
  Engine& e = engine_for(GetParam());
  ExecutorConfig cfg;
  cfg.policy = SchedulerPolicy::MaxUtilization;
  cfg.enable_prefix_reuse = true;
  cfg.tokens_per_block = 8;
  cfg.max_num_tokens = 96;
  cfg.kv_cache_bytes = 40 * int64_t(kv_block_bytes(e.model(), DType::F32, 8));
  Executor ex(e, cfg);

  constexpr int kRequests = 2000;
  std::mutex mu;
  std::map<RequestId, Request> issued;  // under mu
  std::atomic<bool> done_issuing{false};
  std::thread producer([&] {
    std::mt19937 rng(2024);
    for (int i = 0; i < kRequests; ++i) {
      Request r = random_request(rng, e.model().vocab_size);
      std::lock_guard lk(mu);  // held across enqueue so the consumer never sees an id before it is recorded
      issued[ex.enqueue(r)] = r;
      if (i % 50 == 49) std::this_thread::yield();
    }
    done_issuing = true;
  });

  std::mt19937 rng(99);
  std::map<RequestId, Outcome> out;
  std::set<RequestId> cancel_asked;
  size_t finals = 0;
  bool ok = true;  // failures inside the loop stop it (the producer must still be joined)
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  while (ok && !(done_issuing && finals == size_t(kRequests))) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "only " << finals << " final responses after 3 minutes";
      ok = false;
    }
    auto rs = ex.await_responses(std::chrono::milliseconds(200));
    std::lock_guard lk(mu);
    for (auto& r : rs) {
      if (!issued.count(r.request_id)) {
        ADD_FAILURE() << "response for an id never issued: " << r.request_id;
        ok = false;
        continue;
      }
      Outcome& o = out[r.request_id];
      if (o.finals) {
        ADD_FAILURE() << "response after the final one, id " << r.request_id;
        ok = false;
      }
      absorb(o, r);
      finals += r.is_final;
    }
    // Cancel a few live requests at random moments.
    for (int k = 0; k < 3 && !issued.empty(); ++k) {
      auto it = issued.lower_bound(RequestId(1 + rng() % issued.rbegin()->first));
      if (it == issued.end() || rng() % 8 != 0) continue;
      if (ex.cancel(it->first)) cancel_asked.insert(it->first);
    }
  }
  producer.join();
  ASSERT_TRUE(ok);

  ASSERT_EQ(out.size(), size_t(kRequests));
  int cancelled = 0, beams = 0, errors = 0;
  for (auto& [id, o] : out) {
    const Request& r = issued[id];
    EXPECT_EQ(o.finals, 1) << "id " << id;
    if (!o.error.empty()) ++errors;
    const size_t n = size_t(r.num_return_sequences);
    ASSERT_EQ(o.reasons.size(), n) << "id " << id;
    for (size_t k = 0; k < o.reasons.size(); ++k) {
      const FinishReason fr = o.reasons[k];
      EXPECT_NE(fr, FinishReason::None) << "id " << id;
      if (fr == FinishReason::Cancelled) {
        EXPECT_TRUE(cancel_asked.count(id)) << "cancelled without being asked";
      }
      cancelled += fr == FinishReason::Cancelled;
      if (k < o.ids.size()) {
        EXPECT_LE(o.ids[k].size(), size_t(r.max_new_tokens)) << "id " << id;
      }
      if (fr == FinishReason::Length && (k < o.ids.size())) {
        EXPECT_EQ(o.ids[k].size(), size_t(r.max_new_tokens));
      }
      if (r.return_log_probs && fr != FinishReason::Cancelled && k < o.log_probs.size()) {
        EXPECT_EQ(o.log_probs[k].size(), o.ids[k].size());
      }
    }
    if (!r.streaming) {
      EXPECT_EQ(o.responses, 1) << "non-streaming requests get exactly one response";
    }
    beams += r.beam_width > 1;
  }
  EXPECT_EQ(errors, 0);
  EXPECT_GT(cancelled, 0);
  EXPECT_GT(beams, 0);
  const Stats st = ex.stats();
  EXPECT_EQ(st.kv_blocks_used, 0) << "leaked blocks";
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total);
  EXPECT_EQ(st.running_requests, 0);
  EXPECT_EQ(st.queued_requests, 0);
  EXPECT_EQ(st.completed_requests, kRequests);
  EXPECT_GT(st.preemptions, 0);
  EXPECT_GT(st.reused_blocks, 0);
}

INSTANTIATE_TEST_SUITE_P(Models, Soak, ::testing::Values("llama", "gpt2", "mixtral"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kiln::test
