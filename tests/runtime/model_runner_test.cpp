// ModelRunner::step_greedy on the cpu backend: the choice made inside the step is the argmax of the logits the
// step leaves (first maximum), for prompts (gathered rows) and for decode steps (every row, no gather), and the
// pipelined greedy loop that uses it (generate_greedy without kept logits) gives the same tokens as the loop that
// brings every logits row to the host.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/greedy_util.h"
#include "runtime/generate.h"
#include "runtime/kv_cache.h"
#include "runtime/model_runner.h"
#include "runtime_fixtures.h"

namespace kiln::test {
namespace {

class GreedyStep : public ::testing::TestWithParam<std::string> {};

TEST_P(GreedyStep, ChoiceIsTheArgmaxOfTheStepsLogits) {
  Engine& e = engine_for(GetParam());
  Backend& be = e.backend();
  const int64_t V = e.model().vocab_size, tpb = 16, per_seq = 4;
  ModelRunner runner(e, allocate_kv_cache(be, e.model(), 2 * per_seq, tpb));
  std::vector<std::vector<int32_t>> tables(2);
  for (int s = 0; s < 2; ++s)
    for (int64_t b = 0; b < per_seq; ++b) tables[size_t(s)].push_back(int32_t(b * 2 + s));
  std::mt19937 rng(7);
  std::vector<SeqStep> st(2);
  for (int s = 0; s < 2; ++s) {
    st[size_t(s)].tokens = random_ids(rng, s == 0 ? 5 : 19, V);
    st[size_t(s)].block_table = &tables[size_t(s)];
  }
  for (int step = 0; step < 6; ++step) {
    Tensor logits;
    const Tensor ids = runner.step_greedy(st, false, &logits);
    ASSERT_EQ(ids.dim(0), 2);
    ASSERT_EQ(logits.dim(0), 2);
    const std::vector<int32_t> got = expect_first_argmax(be, ids, logits, "step " + std::to_string(step)).ids;
    for (int s = 0; s < 2; ++s) {
      st[size_t(s)].num_cached += int32_t(st[size_t(s)].tokens.size());
      st[size_t(s)].tokens = {got[size_t(s)]};
    }
  }
}

TEST_P(GreedyStep, PipelinedLoopGivesTheHostLoopsTokens) {
  Engine& e = engine_for(GetParam());
  std::mt19937 rng(11);
  const std::vector<int32_t> prompt = random_ids(rng, 9, e.model().vocab_size);
  GreedyOptions o;
  o.max_new_tokens = 12;
  const auto device = generate_greedy(e, prompt, o);
  o.keep_logits = true;
  const auto host = generate_greedy(e, prompt, o);
  EXPECT_EQ(device.output_ids, host.output_ids);
  EXPECT_EQ(device.output_ids.size(), 12u);
}

INSTANTIATE_TEST_SUITE_P(Models, GreedyStep, ::testing::Values("llama", "gpt2", "mixtral"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kiln::test
