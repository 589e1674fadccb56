// The executor against transformers' goldens (greedy tokens, log-probs), and its per-request behaviour:
// seeds, several sampled sequences, stop sequences, end ids, bad words, streaming.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "runtime/kv_cache.h"
#include "runtime_fixtures.h"

namespace kiln::test {
namespace {

struct GoldenCase {
  std::vector<int32_t> prompt, expected;
  const float* logits = nullptr;  // [P + N, V] or null
};

std::vector<GoldenCase> golden_cases(const std::string& model, SafetensorsFile& f) {
  auto meta = read_json_file(model_dir(model) + "/golden.json");
  auto cases = meta.contains("cases") ? meta["cases"] : meta["samples"];
  std::vector<GoldenCase> out;
  for (size_t i = 0; i < cases.size(); ++i) {
    const int64_t P = cases[i]["prompt_len"].get<int64_t>();
    const TensorView& t = f.get("tokens_" + std::to_string(i));
    const auto* tk = static_cast<const int32_t*>(t.data);
    GoldenCase c;
    c.prompt.assign(tk, tk + P);
    c.expected.assign(tk + P, tk + t.numel());
    if (f.has("logits_" + std::to_string(i))) c.logits = static_cast<const float*>(f.get("logits_" + std::to_string(i)).data);
    out.push_back(std::move(c));
  }
  return out;
}

class PerModel : public ::testing::TestWithParam<std::string> {};

// All golden cases of a model at once in one executor: greedy tokens equal transformers'; log-probs equal
// log_softmax of transformers' logits at each generated position.
TEST_P(PerModel, GreedyReproducesGoldensConcurrently) {
  const std::string model = GetParam();
  Engine& engine = engine_for(model);
  SafetensorsFile f(model_dir(model) + "/golden.safetensors");
  auto cases = golden_cases(model, f);
  Executor ex(engine, {});
  std::vector<RequestId> ids;
  for (auto& c : cases) {
    Request r;
    r.input_ids = c.prompt;
    r.max_new_tokens = int32_t(c.expected.size());
    r.end_id = -1;  // the goldens ran for a fixed number of tokens
    r.return_log_probs = true;
    ids.push_back(ex.enqueue(r));
  }
  auto out = collect(ex, ids);
  const int64_t V = engine.model().vocab_size;
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(model + " case " + std::to_string(i));
    const Outcome& o = out[ids[i]];
    ASSERT_EQ(o.ids.size(), 1u);
    EXPECT_EQ(o.ids[0], cases[i].expected);
    EXPECT_EQ(o.reasons, std::vector<FinishReason>{FinishReason::Length});
    if (!cases[i].logits) continue;
    const int64_t P = int64_t(cases[i].prompt.size());
    ASSERT_EQ(o.log_probs[0].size(), cases[i].expected.size());
    for (size_t j = 0; j < cases[i].expected.size(); ++j) {
      const float* row = cases[i].logits + (P - 1 + int64_t(j)) * V;
      double mx = row[0], z = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max<double>(mx, row[v]);
      for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
      EXPECT_NEAR(o.log_probs[0][j], row[cases[i].expected[j]] - mx - std::log(z), 1e-4) << "token " << j;
    }
  }
  EXPECT_EQ(ex.stats().kv_blocks_used, 0);
}

INSTANTIATE_TEST_SUITE_P(Models, PerModel, ::testing::ValuesIn(fixture_models()), [](const auto& info) {
  std::string n = info.param;
  for (auto& ch : n)
    if (ch == '-') ch = '_';
  return n;
});

Request sampled(std::vector<int32_t> prompt, int32_t n, uint64_t seed) {
  Request r;
  r.input_ids = std::move(prompt);
  r.max_new_tokens = n;
  r.end_id = -1;
  r.sampling.temperature = 0.9f;
  r.sampling.top_k = 50;
  r.sampling.top_p = 0.95f;
  r.sampling.seed = seed;
  r.return_log_probs = true;
  return r;
}

TEST(Executor, SeedReproducesAloneAndInABusyBatch) {
  Engine& engine = engine_for("tiny-code");
  std::mt19937 rng(7);
  const Request target = sampled({0, 563, 1181, 97, 12}, 40, 2024);
  Outcome alone, again, busy_o;
  {
    Executor ex(engine, {});
    alone = run_one(ex, target);
    again = run_one(ex, target);
    Request other = target;
    other.sampling.seed = 2025;
    EXPECT_NE(run_one(ex, other).ids, alone.ids) << "a different seed should give a different sample";
  }
  {
    ExecutorConfig cfg;
    cfg.policy = SchedulerPolicy::MaxUtilization;
    cfg.max_num_tokens = 24;  // chunked prompts beside it
    Executor ex(engine, cfg);
    std::vector<RequestId> ids;
    for (int i = 0; i < 6; ++i) ids.push_back(ex.enqueue(sampled(random_ids(rng, 10 + 9 * i, 4096), 20 + i, 100 + i)));
    const RequestId t = ex.enqueue(target);
    for (int i = 0; i < 6; ++i) ids.push_back(ex.enqueue(sampled(random_ids(rng, 3 + 5 * i, 4096), 30, 200 + i)));
    ids.push_back(t);
    busy_o = collect(ex, ids)[t];
  }
  EXPECT_EQ(alone.ids, again.ids);
  EXPECT_EQ(alone.ids, busy_o.ids);
  ASSERT_EQ(alone.log_probs.size(), 1u);
  ASSERT_EQ(busy_o.log_probs.size(), 1u);
  for (size_t j = 0; j < alone.log_probs[0].size(); ++j) EXPECT_NEAR(alone.log_probs[0][j], busy_o.log_probs[0][j], 1e-4);
}

TEST(Executor, SeveralSampledSequencesShareThePromptAndDiffer) {
  Engine& engine = engine_for("tiny-code");
  Executor ex(engine, {});
  Request r = sampled({0, 563, 1181, 97, 12, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58,
                       59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69},
                      16, 99);
  r.num_return_sequences = 3;
  Outcome o = run_one(ex, r);
  ASSERT_EQ(o.ids.size(), 3u);
  for (auto& s : o.ids) EXPECT_EQ(s.size(), 16u);
  EXPECT_NE(o.ids[0], o.ids[1]);
  EXPECT_NE(o.ids[1], o.ids[2]);
  // Sequence 0 is the same sample as a single-sequence request with the same seed.
  Request single = r;
  single.num_return_sequences = 1;
  EXPECT_EQ(run_one(ex, single).ids[0], o.ids[0]);
  EXPECT_EQ(ex.stats().kv_blocks_used, 0);
}

TEST(Executor, StopsAtStopSequencesAndEndIds) {
  Engine& engine = engine_for("llama");
  Executor ex(engine, {});
  Request r;
  r.input_ids = {5, 17, 33, 9};
  r.max_new_tokens = 20;
  r.end_id = -1;
  const auto full = run_one(ex, r).ids[0];
  ASSERT_EQ(full.size(), 20u);
  // A stop sequence made of generated tokens 3..5 ends the output right after it.
  Request s = r;
  s.stop_sequences = {{full[3], full[4], full[5]}, {383, 383, 383}};
  Outcome os = run_one(ex, s);
  EXPECT_EQ(os.reasons[0], FinishReason::Stop);
  EXPECT_EQ(os.ids[0], std::vector<int32_t>(full.begin(), full.begin() + 6));
  // An end id: the first occurrence of generated token 7's id ends the output (included), reason eos.
  Request e = r;
  e.end_id = full[7];
  Outcome oe = run_one(ex, e);
  const size_t first = size_t(std::find(full.begin(), full.end(), full[7]) - full.begin());
  EXPECT_EQ(oe.reasons[0], FinishReason::Eos);
  EXPECT_EQ(oe.ids[0], std::vector<int32_t>(full.begin(), full.begin() + ptrdiff_t(first) + 1));
  // ignore_eos keeps going through it.
  e.sampling.ignore_eos = true;
  EXPECT_EQ(run_one(ex, e).ids[0], full);
}

TEST(Executor, BadWordsAreNeverGenerated) {
  Engine& engine = engine_for("llama");
  Executor ex(engine, {});
  Request r;
  r.input_ids = {5, 17, 33, 9};
  r.max_new_tokens = 20;
  r.end_id = -1;
  const auto full = run_one(ex, r).ids[0];
  Request b = r;
  b.bad_words = {{full[0]}, {full[1], full[2]}};
  const auto out = run_one(ex, b).ids[0];
  EXPECT_NE(out[0], full[0]);
  for (size_t j = 0; j < out.size(); ++j) {
    EXPECT_NE(out[j], full[0]);
    if (j > 0) {
      EXPECT_FALSE(out[j - 1] == full[1] && out[j] == full[2]);
    }
  }
}

TEST(Executor, StreamingDeliversEveryTokenOnce) {
  Engine& engine = engine_for("qwen2");
  Executor ex(engine, {});
  Request r;
  r.input_ids = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  r.max_new_tokens = 12;
  r.end_id = -1;
  const auto whole = run_one(ex, r);
  r.streaming = true;
  r.return_log_probs = true;
  const auto streamed = run_one(ex, r);
  EXPECT_EQ(streamed.ids, whole.ids);
  EXPECT_EQ(streamed.responses, 12);  // one per generated token; the last is final
  EXPECT_EQ(streamed.finals, 1);
  EXPECT_EQ(streamed.log_probs[0].size(), 12u);
}

TEST(Executor, PadsReturnedSequencesWithPadId) {
  Engine& engine = engine_for("llama");
  Executor ex(engine, {});
  Request r = sampled({5, 17, 33, 9}, 12, 3);
  r.num_return_sequences = 4;
  const Outcome free_run = run_one(ex, r);
  ASSERT_EQ(free_run.ids.size(), 4u);
  // Same seed, same samples: a stop sequence on sample 1's third token ends it by then.
  r.stop_sequences = {{free_run.ids[1][2]}};
  r.pad_id = 0;
  Outcome o = run_one(ex, r);
  ASSERT_EQ(o.ids.size(), 4u);
  EXPECT_LE(o.log_probs[1].size(), 3u);
  EXPECT_EQ(o.reasons[1], FinishReason::Stop);
  size_t longest = 0;
  for (auto& lp : o.log_probs) longest = std::max(longest, lp.size());
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(o.ids[i].size(), longest) << "padded to the longest";
    // The real tokens are as many as the log-probs; the rest is pad_id.
    for (size_t j = o.log_probs[i].size(); j < o.ids[i].size(); ++j) EXPECT_EQ(o.ids[i][j], 0);
    for (size_t j = 0; j < o.log_probs[i].size(); ++j) EXPECT_EQ(o.ids[i][j], free_run.ids[i][j]);
  }
}

}  // namespace
}  // namespace kiln::test
