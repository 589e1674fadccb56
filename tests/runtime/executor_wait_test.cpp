// How responses reach callers: await_responses(id) is woken only by its own request's responses; released
// requests keep no responses; a response callback receives every response of its request, in order.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "executor_scenarios.h"

namespace kiln::test {
namespace {

using namespace std::chrono_literals;

TestEngineLimits wait_limits() {
  TestEngineLimits l;
  l.max_batch_size = 4;
  l.max_seq_len = 96;
  l.max_input_len = 32;
  return l;
}

// Collects a callback's responses and lets the test wait for the final one.
struct Sink {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Response> got;
  bool final = false;
  ResponseCallback callback() {
    return [this](Response r) {
      std::lock_guard lk(mu);
      final = final || r.is_final;
      got.push_back(std::move(r));
      cv.notify_all();
    };
  }
  bool wait_final() {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 60s, [&] { return final; });
  }
};

TEST(ExecutorWait, AWaiterIsNotWokenByAnotherRequestsResponses) {
  ExecutorConfig cfg;
  cfg.max_batch_size = 1;  // the second request waits until the first has finished
  Executor ex(engine_for("llama", wait_limits()), cfg);
  Request busy = basic_request(8, 48);
  busy.streaming = true;
  Sink sink;
  ex.enqueue(busy, sink.callback());
  const RequestId quiet = ex.enqueue(basic_request(4, 2));  // one final response, after `busy`
  std::vector<Response> got;
  std::thread waiter([&] {
    while (got.empty() || !got.back().is_final)
      for (auto& r : ex.await_responses(quiet, 60000ms)) got.push_back(std::move(r));
  });
  ASSERT_TRUE(sink.wait_final());
  waiter.join();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].output_ids.at(0).size(), 2u);
  EXPECT_GE(sink.got.size(), 40u);  // `busy` streamed a response per token
  // The waiter wakes for its own response (and, rarely, spuriously), not once per response of `busy`.
  EXPECT_LE(ex.stats().await_wakeups, 3);
}

TEST(ExecutorWait, CallbackGetsEveryResponseInOrderAndAwaitNone) {
  Executor ex(engine_for("llama", wait_limits()), {});
  Request r = basic_request(6, 20);
  r.streaming = true;
  const Outcome ref = run_one(ex, r);
  Sink sink;
  const RequestId id = ex.enqueue(r, sink.callback());
  ASSERT_TRUE(sink.wait_final());
  Outcome o;
  for (auto& resp : sink.got) {
    EXPECT_EQ(resp.request_id, id);
    absorb(o, resp);
  }
  EXPECT_EQ(o.finals, 1);
  EXPECT_TRUE(sink.got.back().is_final);
  EXPECT_EQ(o.ids, ref.ids);
  EXPECT_TRUE(ex.await_responses(0ms).empty());
  EXPECT_EQ(ex.stats().kept_responses, 0);
}

TEST(ExecutorWait, ReleasedRequestsKeepNoResponses) {
  Executor ex(engine_for("llama", wait_limits()), {});
  // Released while running: cancelled, its blocks freed, none of its responses kept or returned.
  Request streaming = basic_request(8, 60);
  streaming.streaming = true;
  const RequestId a = ex.enqueue(streaming);
  ASSERT_FALSE(ex.await_responses(a, 60000ms).empty());  // it is running
  ex.release(a);
  // Released after its final response was produced but before anyone took it.
  const RequestId b = ex.enqueue(basic_request(4, 3));
  for (int i = 0; i < 6000 && ex.stats().completed_requests < 2; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(ex.stats().completed_requests, 2);
  ex.release(b);
  const Outcome c = run_one(ex, basic_request(4, 5));  // await_responses for any request sees only c
  EXPECT_EQ(c.finals, 1);
  EXPECT_TRUE(ex.await_responses(0ms).empty());
  EXPECT_TRUE(ex.await_responses(a).empty());
  EXPECT_TRUE(ex.await_responses(b).empty());
  const Stats st = ex.stats();
  EXPECT_EQ(st.kept_responses, 0);
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(st.running_requests, 0);
}

}  // namespace
}  // namespace kiln::test
