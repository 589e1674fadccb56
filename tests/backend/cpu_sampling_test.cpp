// The cpu backend's sample and top_log_probs ops (src/backend/cpu/sampling.cpp) on fixed logits: empirical
// frequencies against closed-form distributions (chi-square at a fixed seed), the draw in id order against the
// cumulative distribution, penalties and bans against their formulas, greedy choice and log-probs, top_log_probs
// against a sorted log-softmax.
#include "backend/cpu/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "common/sampling_util.h"
#include "core/error.h"

namespace kiln::test {
namespace {

const std::vector<float> kLogits = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -3.0f};
constexpr float kInf = std::numeric_limits<float>::infinity();

SampleRowParams sampled(float temperature, uint64_t seed = 1234) {
  SampleRowParams p;
  p.temperature = temperature;
  p.seed = seed;
  return p;
}

class CpuSampling : public ::testing::Test {
 protected:
  CpuBackend be{2};
};

TEST_F(CpuSampling, TemperatureMatchesSoftmax) {
  expect_draws_match(be, kLogits, sampled(0.7f), softmax(kLogits, 0.7));
  expect_draws_match(be, kLogits, sampled(1.6f), softmax(kLogits, 1.6));
}

TEST_F(CpuSampling, ChiSquareDetectsTheWrongDistribution) {
  // The same draws judged against the distribution of another temperature must fail the test.
  auto counts = draw_counts(be, kLogits, sampled(0.7f), 40000);
  int df = 0;
  const double s = chi2(counts, softmax(kLogits, 1.0), 40000, &df);
  EXPECT_GT(s, chi2_critical(df));
}

TEST_F(CpuSampling, TopKMatchesRenormalizedTopK) {
  SampleRowParams p = sampled(1.0f);
  p.top_k = 3;
  expect_draws_match(be, kLogits, p,
                     restrict_to(softmax(kLogits, 1.0), {true, true, true, false, false, false, false, false}));
}

TEST_F(CpuSampling, TopPKeepsTokensWhileMassBeforeIsBelowP) {
  SampleRowParams p = sampled(1.0f);
  p.top_p = 0.8f;
  auto q = softmax(kLogits, 1.0);  // logits are sorted, so the prefix sums are the mass before each token
  std::vector<bool> keep(q.size());
  double before = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    keep[i] = before < 0.8;
    before += q[i];
  }
  ASSERT_EQ(std::count(keep.begin(), keep.end(), true), 4);  // 0.391 + 0.237 + 0.144 = 0.772 < 0.8
  expect_draws_match(be, kLogits, p, restrict_to(q, keep));
}

TEST_F(CpuSampling, MinPDropsTokensBelowFractionOfTheBest) {
  SampleRowParams p = sampled(1.0f);
  p.min_p = 0.2f;
  auto q = softmax(kLogits, 1.0);
  std::vector<bool> keep(q.size());
  for (size_t i = 0; i < q.size(); ++i) keep[i] = q[i] >= 0.2 * q[0];  // exp(-1.5) = 0.223 kept, exp(-2) not
  ASSERT_EQ(std::count(keep.begin(), keep.end(), true), 4);
  expect_draws_match(be, kLogits, p, restrict_to(q, keep));
}

TEST_F(CpuSampling, FiltersComposeAfterTemperature) {
  // temperature 0.5, top_k 5, then top_p 0.9 over the renormalized top 5, then min_p 0.05.
  SampleRowParams p = sampled(0.5f);
  p.top_k = 5;
  p.top_p = 0.9f;
  p.min_p = 0.05f;
  auto q = softmax(kLogits, 0.5);
  std::vector<bool> keep(q.size(), false);
  double z5 = 0;
  for (int i = 0; i < 5; ++i) z5 += q[i];
  double before = 0;
  for (int i = 0; i < 5; ++i) {
    keep[i] = before < 0.9 && q[i] >= 0.05 * q[0];
    before += q[i] / z5;
  }
  expect_draws_match(be, kLogits, p, restrict_to(q, keep));
}

TEST_F(CpuSampling, DistributionFunctionIsTheClosedForm) {
  SampleRowParams p = sampled(0.7f);
  p.top_k = 4;
  const TokenDistribution d = sampling_distribution(kLogits.data(), int64_t(kLogits.size()), p);
  auto want = restrict_to(softmax(kLogits, double(p.temperature)), {true, true, true, true, false, false, false, false});
  ASSERT_EQ(d.ids, (std::vector<int32_t>{0, 1, 2, 3}));  // in id order
  for (size_t i = 0; i < d.ids.size(); ++i) EXPECT_NEAR(d.prob(i), want[size_t(d.ids[i])], 1e-12);
}

TEST_F(CpuSampling, TiesAtTheThresholdKeepTheLowerIds) {
  // Logits 1, 3, 1, 3, 1: top_k 3 keeps ids 1 and 3 and the first 1 (id 0).
  const std::vector<float> l = {1.0f, 3.0f, 1.0f, 3.0f, 1.0f};
  SampleRowParams p = sampled(1.0f);
  p.top_k = 3;
  EXPECT_EQ(sampling_distribution(l.data(), 5, p).ids, (std::vector<int32_t>{0, 1, 3}));
  // top_p: each 3 holds 1 / (2 + 3e^-2) = 0.416 of the mass, each 1 0.056. At 0.85 the first 1 (id 0) is kept
  // too (0.831 before it), the second not (0.887 before it).
  p.top_k = 0;
  p.top_p = 0.85f;
  EXPECT_EQ(sampling_distribution(l.data(), 5, p).ids, (std::vector<int32_t>{0, 1, 3}));
  p.top_p = 0.5f;  // the first 3 alone holds 0.44 < 0.5: the second 3 is kept
  EXPECT_EQ(sampling_distribution(l.data(), 5, p).ids, (std::vector<int32_t>{1, 3}));
  p.top_p = 0.4f;
  EXPECT_EQ(sampling_distribution(l.data(), 5, p).ids, (std::vector<int32_t>{1}));
}

TEST_F(CpuSampling, TheDrawWalksTheKeptTokensInIdOrder) {
  // For every counter, the op's token is the first (in id order) whose cumulative probability exceeds u.
  SampleRowParams p = sampled(0.9f, 77);
  p.top_k = 6;
  p.min_p = 0.2f;  // drops id 0: exp((0.3 - 2) / 0.9) = 0.151
  SampleCase c;
  c.logits = {0.3f, 2.0f, -1.0f, 1.7f, 0.9f, 2.0f, -0.2f, 1.1f, -3.0f, 0.0f};
  c.V = 10;
  std::vector<bool> keep(10, false);
  for (int id : {0, 1, 3, 4, 5, 7}) keep[size_t(id)] = true;  // the top 6
  auto q = softmax(c.logits, 0.9);
  for (size_t i = 0; i < 10; ++i) keep[i] = keep[i] && q[i] >= 0.2 * q[1];
  ASSERT_FALSE(keep[0]);
  q = restrict_to(q, keep);
  for (uint64_t n = 0; n < 500; ++n) {
    p.counter = n;
    c.rows.push_back(p);
  }
  const auto got = run_sample(be, c);
  for (size_t n = 0; n < got.size(); ++n) {
    const double u = seeded_uniform(77, 0, n);
    size_t want = 0;
    for (double cum = 0; want < q.size(); ++want)
      if ((cum += q[want]) > u) break;
    ASSERT_EQ(got[n].id, int32_t(want)) << "counter " << n << " u " << u;
    EXPECT_NEAR(got[n].log_prob, std::log(q[want]), 1e-6);
  }
}

TEST_F(CpuSampling, GreedyTakesFirstMaximumAndReportsLogSoftmax) {
  SampleCase c;
  c.logits = {0.5f, 3.0f, 3.0f, -1.0f};
  c.V = 4;
  SampleRowParams p;  // temperature 0
  p.want_log_prob = 1;
  c.rows = {p};
  const auto t = run_sample(be, c)[0];
  EXPECT_EQ(t.id, 1);
  const double z = std::exp(0.5) + 2 * std::exp(3.0) + std::exp(-1.0);
  EXPECT_NEAR(t.log_prob, 3.0 - std::log(z), 1e-6);
}

TEST_F(CpuSampling, SampledLogProbIsOfTheFinalDistribution) {
  SampleCase c;
  c.logits = kLogits;
  c.V = 8;
  SampleRowParams p = sampled(1.0f, 5);
  p.top_k = 2;
  c.rows = {p};
  const auto t = run_sample(be, c)[0];
  ASSERT_TRUE(t.id == 0 || t.id == 1);
  const double p0 = 1 / (1 + std::exp(-0.5));
  EXPECT_NEAR(t.log_prob, std::log(t.id == 0 ? p0 : 1 - p0), 1e-6);
}

TEST_F(CpuSampling, PenaltiesAndBansFollowTheirFormulas) {
  std::vector<float> l = {1.0f, 2.0f, -1.0f, 0.5f, -2.0f, 3.0f};
  SampleRowParams p;
  p.repetition_penalty = 1.25f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  const std::vector<PenaltyEntry> pen = {{1, 0}, {2, 1}, {3, 3}, {9, 1}};  // 9: outside the vocabulary
  const std::vector<int32_t> bans = {4, -1};
  p.pen_end = 4;
  p.ban_end = 2;
  apply_penalties_and_bans(l.data(), 6, p, SampleLists{pen.data(), 4, bans.data(), 2});
  EXPECT_EQ(l[0], 1.0f);                                   // not listed
  EXPECT_EQ(l[1], 2.0f / 1.25f);                           // prompt only: repetition (positive logit: divided)
  EXPECT_EQ(l[2], -1.0f * 1.25f - (0.5f + 0.25f * 1.0f));  // negative logit: multiplied; once in the output
  EXPECT_EQ(l[3], 0.5f / 1.25f - (0.5f + 0.25f * 3.0f));   // three times in the output
  EXPECT_EQ(l[4], -kInf);                                  // banned
  EXPECT_EQ(l[5], 3.0f);
}

TEST_F(CpuSampling, RowsShareLogitsRowsAndReadTheirOwnLists) {
  // Two logits rows; four sample rows (greedy) read them, each with its own bans: row 2 bans row 0's argmax.
  SampleCase c;
  c.logits = {0.0f, 5.0f, 1.0f, /* row 1 */ 4.0f, 0.0f, 2.0f};
  c.V = 3;
  c.bans = {1, 0};
  SampleRowParams p;
  c.rows.assign(4, p);
  c.rows[1].logits_row = 1;
  c.rows[2].ban_begin = 0, c.rows[2].ban_end = 1;                         // row 0 without token 1
  c.rows[3].logits_row = 1, c.rows[3].ban_begin = 1, c.rows[3].ban_end = 2;  // row 1 without token 0
  const auto t = run_sample(be, c);
  EXPECT_EQ(t[0].id, 1);
  EXPECT_EQ(t[1].id, 0);
  EXPECT_EQ(t[2].id, 2);
  EXPECT_EQ(t[3].id, 2);
}

TEST_F(CpuSampling, EverythingBannedGivesNoTokenAndBadRowsAreFlagged) {
  SampleCase c;
  c.logits = {0.0f, 0.0f};
  c.V = 2;
  c.bans = {0, 1};
  SampleRowParams greedy, hot = sampled(1.0f), bad;
  greedy.ban_end = hot.ban_end = 2;
  bad.logits_row = 1;  // there is one logits row
  c.rows = {greedy, hot, bad};
  const auto t = run_sample(be, c);
  EXPECT_EQ(t[0].id, kNoToken);
  EXPECT_EQ(t[1].id, kNoToken);
  EXPECT_EQ(t[2].id, kBadRow);
}

TEST_F(CpuSampling, TopLogProbsIsTheSortedProcessedLogSoftmax) {
  SampleCase c;
  c.logits = {0.5f, 2.0f, 2.0f, -1.0f, 1.0f, 2.0f, 0.0f};
  c.V = 7;
  c.penalties = {{4, 1}};
  c.bans = {2};
  SampleRowParams p;
  p.presence_penalty = 0.5f;
  p.pen_end = 1;
  p.ban_end = 1;
  c.rows = {p, SampleRowParams{}};
  const auto top = run_top_log_probs(be, c, 4);
  for (int r = 0; r < 2; ++r) {
    double z = 0;
    for (float l : c.logits) z += std::exp(double(l) - 2.0);
    std::vector<float> lp(7);
    for (size_t v = 0; v < 7; ++v) lp[v] = float(double(c.logits[v]) - (2.0 + std::log(z)));
    if (r == 0) lp[4] -= 0.5f, lp[2] = -kInf;
    std::vector<int32_t> order(7);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return lp[a] > lp[b]; });
    for (int j = 0; j < 4; ++j) {
      EXPECT_EQ(top.ids[size_t(r * 4 + j)], order[size_t(j)]) << "row " << r << " rank " << j;
      EXPECT_EQ(top.values[size_t(r * 4 + j)], lp[size_t(order[size_t(j)])]) << "row " << r << " rank " << j;
    }
  }
}

TEST_F(CpuSampling, SeededUniformIsAPureFunction) {
  EXPECT_EQ(seeded_uniform(1, 2, 3), seeded_uniform(1, 2, 3));
  EXPECT_NE(seeded_uniform(1, 2, 3), seeded_uniform(1, 2, 4));
  EXPECT_NE(seeded_uniform(1, 2, 3), seeded_uniform(1, 3, 3));
  EXPECT_NE(seeded_uniform(1, 2, 3), seeded_uniform(2, 2, 3));
  double mean = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = seeded_uniform(9, 0, uint64_t(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    mean += u / 10000;
  }
  EXPECT_NEAR(mean, 0.5, 0.01);
}

TEST_F(CpuSampling, OrderKeysFollowTheFloats) {
  const std::vector<float> f = {-kInf, -3.5f, -1e-30f, -0.0f, 0.0f, 1e-30f, 2.0f, kInf};
  for (size_t i = 0; i + 1 < f.size(); ++i) {
    if (f[i] == f[i + 1]) {
      EXPECT_EQ(order_key(f[i]), order_key(f[i + 1]));  // -0 and +0
    } else {
      EXPECT_LT(order_key(f[i]), order_key(f[i + 1])) << f[i] << " < " << f[i + 1];
    }
    EXPECT_EQ(key_float(order_key(f[i])), f[i]);
  }
  EXPECT_LT(order_key(std::nanf("")), order_key(-kInf));
}

}  // namespace
}  // namespace kiln::test
