// BeamSearch bookkeeping on a hand-worked example where the end id competes with other tokens (the fixture
// goldens never end a beam on EOS). Every step gives each beam the same log-probs ln [0.5, 0.2, 0.3] over
// tokens {0, 1, 2 = eos}, so each expectation below follows from transformers' algorithm by hand:
//
//   step 1: candidates 0 (-0.69), 2 (-1.20, eos), 1 (-1.61). Among the first two, [2] finishes with score
//           -1.204 / 1; running beams: [0] (-0.693), [1] (-1.609).
//   step 2: [0,0] -1.386, [0,2] -1.897 (eos), [0,1] -2.303, [1,0] -2.303 (tie: lower beam first).
//           [0,2] finishes: -1.897 / 2 = -0.949 (length_penalty 1). Finished: [0,2] -0.949, [2] -1.204 (full).
//           Running: [0,0] -1.386, [0,1] -2.303. Best possible -1.386 / 2 = -0.693 > -1.204: go on.
//   step 3: the max length: [0,0,0] -2.079 / 3 = -0.693 (length) and [0,0,2] -2.590 / 3 = -0.863 (eos) beat
//           both finished ones. Result: [0,0,0], [0,0,2].
#include "runtime/beam_search.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace kiln {
namespace {

// One step from whole log-prob rows [rows, V]: each row's candidates_per_row(V) best, as top_log_probs gives them.
std::vector<BeamSearch::Choice> step_rows(BeamSearch& bs, const float* lp, int rows, int64_t V) {
  const int64_t k = bs.candidates_per_row(V);
  std::vector<int32_t> ids(size_t(rows * k));
  std::vector<float> vals(ids.size());
  for (int r = 0; r < rows; ++r) {
    std::vector<int32_t> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    const float* row = lp + r * V;
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    for (int64_t j = 0; j < k; ++j) {
      ids[size_t(r * k + j)] = order[size_t(j)];
      vals[size_t(r * k + j)] = row[order[size_t(j)]];
    }
  }
  BeamCandidates c;
  c.ids = ids.data();
  c.log_probs = vals.data();
  c.rows = rows;
  c.k = c.stride = k;
  c.vocab = V;
  return bs.step(c);
}

const float kLp[3] = {float(std::log(0.5)), float(std::log(0.2)), float(std::log(0.3))};

std::vector<BeamHypothesis> run(float length_penalty, EarlyStopping es, int* steps) {
  BeamSearchParams p;
  p.num_beams = 2;
  p.num_return = 2;
  p.max_new_tokens = 3;
  p.length_penalty = length_penalty;
  p.early_stopping = es;
  p.end_ids = {2};
  BeamSearch bs(p);
  *steps = 0;
  int rows = 1;
  while (!bs.done()) {
    std::vector<float> lp;
    for (int r = 0; r < rows; ++r) lp.insert(lp.end(), kLp, kLp + 3);
    auto choices = step_rows(bs, lp.data(), rows, 3);
    ++*steps;
    rows = int(choices.size());
    if (!bs.done()) {
      EXPECT_EQ(rows, 2);
    }
  }
  return bs.results();
}

double lp(std::initializer_list<int> toks) {
  double s = 0;
  for (int t : toks) s += double(kLp[t]);
  return s;
}

TEST(BeamSearch, EosCompetesAndLongerBeamsWin) {
  int steps;
  auto r = run(1.0f, EarlyStopping::Heuristic, &steps);
  EXPECT_EQ(steps, 3);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].tokens, (std::vector<int32_t>{0, 0, 0}));
  EXPECT_NEAR(r[0].score, lp({0, 0, 0}) / 3, 1e-6);
  EXPECT_EQ(r[0].reason, FinishReason::Length);
  EXPECT_EQ(r[1].tokens, (std::vector<int32_t>{0, 0, 2}));
  EXPECT_NEAR(r[1].score, lp({0, 0, 2}) / 3, 1e-6);
  EXPECT_EQ(r[1].reason, FinishReason::Eos);
  EXPECT_EQ(r[1].log_probs, (std::vector<float>{kLp[0], kLp[0], kLp[2]}));
}

TEST(BeamSearch, EagerStopsOnceNumBeamsFinished) {
  int steps;
  auto r = run(1.0f, EarlyStopping::Eager, &steps);
  EXPECT_EQ(steps, 2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].tokens, (std::vector<int32_t>{0, 2}));
  EXPECT_NEAR(r[0].score, lp({0, 2}) / 2, 1e-6);
  EXPECT_EQ(r[1].tokens, (std::vector<int32_t>{2}));
  EXPECT_NEAR(r[1].score, lp({2}), 1e-6);
}

TEST(BeamSearch, NoLengthPenaltyKeepsShortHypotheses) {
  // length_penalty 0: scores are plain sums, so the one-token [2] (-1.204) and [0,2] (-1.897) are never beaten;
  // after step 2 the best running beam (-1.386) could still beat -1.897, after step 3 nothing can.
  int steps;
  auto r = run(0.0f, EarlyStopping::Heuristic, &steps);
  EXPECT_EQ(steps, 3);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].tokens, (std::vector<int32_t>{2}));
  EXPECT_NEAR(r[0].score, lp({2}), 1e-6);
  EXPECT_EQ(r[1].tokens, (std::vector<int32_t>{0, 2}));
  EXPECT_NEAR(r[1].score, lp({0, 2}), 1e-6);
}

TEST(BeamSearch, HeuristicStopsWhenRunningBeamsCannotWin) {
  // With 4 tokens where eos is by far the most likely, both beams finish at step 2 and the best running beam
  // (divided by its length) is worse than the worst finished one: the search ends before max_new_tokens.
  const float l[4] = {float(std::log(0.05)), float(std::log(0.05)), float(std::log(0.1)), float(std::log(0.8))};
  BeamSearchParams p;
  p.num_beams = 2;
  p.num_return = 1;
  p.max_new_tokens = 10;
  p.end_ids = {3};
  BeamSearch bs(p);
  int rows = 1, steps = 0;
  while (!bs.done()) {
    std::vector<float> lp;
    for (int r = 0; r < rows; ++r) lp.insert(lp.end(), l, l + 4);
    rows = int(step_rows(bs, lp.data(), rows, 4).size());
    ++steps;
  }
  EXPECT_EQ(steps, 2);
  auto r = bs.results();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].tokens, (std::vector<int32_t>{3}));
  EXPECT_EQ(r[0].reason, FinishReason::Eos);
}

TEST(BeamSearch, RejectsBadParameters) {
  BeamSearchParams p;
  p.num_beams = 2;
  p.num_return = 3;
  EXPECT_THROW(BeamSearch{p}, Error);
  p.num_return = 1;
  BeamSearch bs(p);
  std::vector<float> lp(8, -1.0f);
  EXPECT_THROW(step_rows(bs, lp.data(), 2, 4), Error);  // 2 rows for 1 running beam
}

}  // namespace
}  // namespace kiln
