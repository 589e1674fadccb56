// The executor on a cuda engine, where sampling and beam search run on the device (Backend::sample,
// top_log_probs) and logits never reach the host: a greedy request gives generate_greedy's tokens (the device
// argmax path), a batch of sampled (seeded), beam and failing requests gives the same outputs when run again,
// beams come best first, and the request with every token banned fails alone. (cuda GEMMs are not
// batch-invariant, so outputs are compared between runs of the same batch.) Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "backend_cuda/cuda_test_util.h"
#include "kiln/executor.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/outcome.h"

namespace kiln::test {
namespace {

std::map<RequestId, Outcome> run_all(Executor& ex, const std::vector<Request>& rs) {
  std::vector<RequestId> ids;
  for (const Request& r : rs) ids.push_back(ex.enqueue(r));
  std::map<RequestId, Outcome> out;
  size_t finals = 0;
  while (finals < ids.size()) {
    auto got = ex.await_responses(std::chrono::milliseconds(60000));
    if (got.empty()) {
      ADD_FAILURE() << "no response within 60 s";
      break;
    }
    for (const Response& r : got) {
      absorb(out[r.request_id], r);
      finals += r.is_final;
    }
  }
  std::map<RequestId, Outcome> ordered;  // keyed by the request's index
  for (size_t i = 0; i < ids.size(); ++i) ordered[i] = out[ids[i]];
  return ordered;
}

TEST(CudaExecutor, SamplesAndBeamsOnTheDevice) {
  if (!have_gpu()) GTEST_SKIP() << no_gpu_message();
  auto engine = Engine::load(cuda_engine("llama", "float16", 4));
  const std::vector<int32_t> prompt = {5, 17, 33, 9, 120, 7};
  GreedyOptions go;
  go.max_new_tokens = 12;
  const auto greedy_ref = generate_greedy(*engine, prompt, go).output_ids;

  Executor ex(*engine, {});
  Request greedy;
  greedy.input_ids = prompt;
  greedy.max_new_tokens = 12;
  greedy.end_id = -1;
  greedy.return_log_probs = true;
  Request sampled = greedy;
  sampled.sampling.temperature = 0.8f;
  sampled.sampling.top_k = 40;
  sampled.sampling.top_p = 0.9f;
  sampled.sampling.min_p = 0.02f;
  sampled.sampling.repetition_penalty = 1.1f;
  sampled.sampling.frequency_penalty = 0.2f;
  sampled.sampling.seed = 11;
  sampled.num_return_sequences = 3;
  sampled.bad_words = {{greedy_ref[0]}};
  Request beam = greedy;
  beam.beam_width = 4;
  beam.num_return_sequences = 2;
  Request doomed = greedy;
  for (int32_t t = 0; t < int32_t(engine->model().vocab_size); ++t) doomed.bad_words.push_back({t});

  auto alone = run_all(ex, {greedy});
  ASSERT_TRUE(alone[0].error.empty()) << alone[0].error;
  EXPECT_EQ(alone[0].ids[0], greedy_ref);
  for (float lp : alone[0].log_probs[0]) EXPECT_LE(lp, 0.f);

  auto out = run_all(ex, {greedy, sampled, beam, doomed});
  ASSERT_TRUE(out[0].error.empty()) << out[0].error;

  ASSERT_TRUE(out[1].error.empty()) << out[1].error;
  ASSERT_EQ(out[1].ids.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out[1].ids[i].size(), 12u);
    EXPECT_NE(out[1].ids[i][0], greedy_ref[0]) << "a banned token was sampled";
    for (float lp : out[1].log_probs[i]) EXPECT_TRUE(std::isfinite(lp) && lp <= 0.f) << lp;
  }
  auto again = run_all(ex, {greedy, sampled, beam, doomed});  // the same batch: the same outputs
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(again[i].ids, out[i].ids) << "request " << i;
    EXPECT_EQ(again[i].scores, out[i].scores) << "request " << i;
  }

  ASSERT_TRUE(out[2].error.empty()) << out[2].error;
  ASSERT_EQ(out[2].ids.size(), 2u);
  ASSERT_EQ(out[2].scores.size(), 2u);
  EXPECT_GE(out[2].scores[0], out[2].scores[1]);

  EXPECT_NE(out[3].error.find("every logit is -inf"), std::string::npos) << out[3].error;
}

}  // namespace
}  // namespace kiln::test
