// The executor's greedy chain (src/runtime/executor_greedy.cpp): greedy requests take their tokens from the argmax
// made inside the step, and the next step is queued before the host has the tokens. Checked against transformers'
// goldens, against the sampling path (the same requests with log-probs, which run through Backend::sample), for
// the steps it runs (no step beyond a request's last token; at most one discarded step after an end id), and for
// the logits rows a request may ask for (transformers' logits).
#include <gtest/gtest.h>

#include <cmath>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "runtime_fixtures.h"

namespace kiln::test {
namespace {

struct Golden {
  std::vector<int32_t> prompt, expected;
  const float* logits = nullptr;  // [P + N, V] or null
};

std::vector<Golden> goldens(const std::string& model, SafetensorsFile& f) {
  auto meta = read_json_file(model_dir(model) + "/golden.json");
  auto cases = meta.contains("cases") ? meta["cases"] : meta["samples"];
  std::vector<Golden> out;
  for (size_t i = 0; i < cases.size(); ++i) {
    const int64_t P = cases[i]["prompt_len"].get<int64_t>();
    const auto* tk = static_cast<const int32_t*>(f.get("tokens_" + std::to_string(i)).data);
    Golden g;
    g.prompt.assign(tk, tk + P);
    g.expected.assign(tk + P, tk + f.get("tokens_" + std::to_string(i)).numel());
    if (f.has("logits_" + std::to_string(i))) g.logits = static_cast<const float*>(f.get("logits_" + std::to_string(i)).data);
    out.push_back(std::move(g));
  }
  return out;
}

Request greedy_request(const std::vector<int32_t>& prompt, int32_t n) {
  Request r;
  r.input_ids = prompt;
  r.max_new_tokens = n;
  r.end_id = -1;
  return r;
}

class GreedyChain : public ::testing::TestWithParam<std::string> {};

// Each golden case alone (batch 1: every decode step queued ahead) and all at once: transformers' tokens, and
// exactly one step per generated token when nothing ends early.
TEST_P(GreedyChain, ReproducesGoldensAloneAndTogether) {
  const std::string model = GetParam();
  Engine& engine = engine_for(model);
  SafetensorsFile f(model_dir(model) + "/golden.safetensors");
  const auto cases = goldens(model, f);
  for (size_t i = 0; i < cases.size(); ++i) {
    Executor ex(engine, {});
    const Outcome o = run_one(ex, greedy_request(cases[i].prompt, int32_t(cases[i].expected.size())));
    EXPECT_EQ(o.ids.at(0), cases[i].expected) << model << " case " << i << " alone";
    EXPECT_EQ(ex.stats().steps, int64_t(cases[i].expected.size())) << "one step per token, none speculated past the end";
  }
  Executor ex(engine, {});
  std::vector<RequestId> ids;
  for (auto& c : cases) ids.push_back(ex.enqueue(greedy_request(c.prompt, int32_t(c.expected.size()))));
  auto out = collect(ex, ids);
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(out[ids[i]].ids.at(0), cases[i].expected) << model << " case " << i;
  EXPECT_EQ(ex.stats().kv_blocks_used, 0);
}

INSTANTIATE_TEST_SUITE_P(Models, GreedyChain, ::testing::Values("llama", "qwen3", "gpt2", "mixtral", "tiny-code"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// An end id reached while the next step is already queued: the output stops at it (finish reason eos), the queued
// step's token is dropped, and a request running beside it keeps exactly its own tokens.
TEST(GreedyChainEnd, EndIdStopsWithTheQueuedStepDiscarded) {
  Engine& engine = engine_for("llama");
  std::mt19937 rng(3);
  const auto p1 = random_ids(rng, 7, engine.model().vocab_size), p2 = random_ids(rng, 12, engine.model().vocab_size);
  Executor ref_ex(engine, {});
  const std::vector<int32_t> full1 = run_one(ref_ex, greedy_request(p1, 20)).ids.at(0);
  const std::vector<int32_t> full2 = run_one(ref_ex, greedy_request(p2, 20)).ids.at(0);
  ASSERT_EQ(full1.size(), 20u);
  // The end id: the token at index 6 of the first request, unless it occurs earlier.
  const int32_t end = full1[6];
  const size_t first = size_t(std::find(full1.begin(), full1.end(), end) - full1.begin());
  const std::vector<int32_t> cut(full1.begin(), full1.begin() + ptrdiff_t(first) + 1);

  Executor alone(engine, {});
  Request r = greedy_request(p1, 20);
  r.end_id = end;
  const Outcome o = run_one(alone, r);
  EXPECT_EQ(o.ids.at(0), cut);
  EXPECT_EQ(o.reasons, std::vector<FinishReason>{FinishReason::Eos});
  EXPECT_EQ(alone.stats().steps, int64_t(cut.size()) + 1) << "the step queued after the end id ran and was dropped";

  Executor both(engine, {});
  Request r2 = greedy_request(p2, 20);
  r2.streaming = true;
  const RequestId a = both.enqueue(r), b = both.enqueue(r2);
  auto out = collect(both, {a, b});
  EXPECT_EQ(out[a].ids.at(0), cut);
  EXPECT_EQ(out[b].ids.at(0), full2) << "streamed, beside a request that ended early";
  EXPECT_EQ(both.stats().kv_blocks_used, 0);
}

// The same requests through the chain and through Backend::sample (asking for log-probs takes that path): the
// same tokens, greedy and mixed with sampled requests in one batch.
TEST(GreedyChainEnd, SameTokensAsTheSamplingPath) {
  Engine& engine = engine_for("qwen2");
  std::mt19937 rng(5);
  std::vector<Request> reqs;
  for (int i = 0; i < 5; ++i) reqs.push_back(greedy_request(random_ids(rng, 3 + 5 * i, engine.model().vocab_size), 9 + i));
  auto run = [&](bool log_probs, bool with_sampled) {
    Executor ex(engine, {});
    std::vector<RequestId> ids;
    for (Request r : reqs) {
      r.return_log_probs = log_probs;
      ids.push_back(ex.enqueue(r));
    }
    if (with_sampled) {
      Request s = greedy_request(reqs[0].input_ids, 15);
      s.sampling.temperature = 0.8f;
      s.sampling.seed = 1;
      ex.enqueue(s);
    }
    auto out = collect(ex, ids);
    std::vector<std::vector<int32_t>> toks;
    for (auto id : ids) toks.push_back(out[id].ids.at(0));
    return toks;
  };
  const auto chain = run(false, false);
  EXPECT_EQ(chain, run(true, false));
  EXPECT_EQ(chain, run(false, true));
}

// return_context_logits / return_generation_logits: every prompt position's row and the row of each generated token,
// against transformers' logits (cpu: float32, 1e-4 per row as the fixture suite).
TEST(GreedyChainEnd, LogitsRowsMatchTransformers) {
  Engine& engine = engine_for("llama");
  SafetensorsFile f(model_dir("llama") + "/golden.safetensors");
  const auto cases = goldens("llama", f);
  const int64_t V = engine.model().vocab_size;
  auto rel = [&](const float* a, const float* b) {
    double num = 0, den = 0;
    for (int64_t v = 0; v < V; ++v) {
      num += (double(a[v]) - b[v]) * (double(a[v]) - b[v]);
      den += double(b[v]) * b[v];
    }
    return std::sqrt(num / std::max(den, 1e-30));
  };
  for (const Golden& c : cases) {
    if (!c.logits) continue;
    Executor ex(engine, {});
    Request r = greedy_request(c.prompt, int32_t(c.expected.size()));
    r.return_context_logits = r.return_generation_logits = true;
    const RequestId id = ex.enqueue(r);
    Response fin;
    std::vector<int32_t> toks;
    for (bool done = false; !done;)
      for (Response& resp : ex.await_responses(id, std::chrono::milliseconds(60000))) {
        toks.insert(toks.end(), resp.output_ids.at(0).begin(), resp.output_ids.at(0).end());
        if ((done = resp.is_final)) fin = std::move(resp);
      }
    const int64_t P = int64_t(c.prompt.size()), N = int64_t(c.expected.size());
    EXPECT_EQ(toks, c.expected);
    ASSERT_EQ(int64_t(fin.context_logits.size()), P * V);
    ASSERT_EQ(int64_t(fin.generation_logits.size()), N * V);
    for (int64_t p = 0; p < P; ++p) EXPECT_LE(rel(&fin.context_logits[size_t(p * V)], c.logits + p * V), 1e-4) << "prompt " << p;
    for (int64_t j = 0; j < N; ++j)
      EXPECT_LE(rel(&fin.generation_logits[size_t(j * V)], c.logits + (P - 1 + j) * V), 1e-4) << "token " << j;
  }
}

}  // namespace
}  // namespace kiln::test
