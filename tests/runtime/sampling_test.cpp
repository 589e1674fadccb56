// Sampling on fixed logits: empirical frequencies against closed-form distributions (chi-square at a fixed seed),
// penalties and bad words against their formulas, greedy choice and log-probs.
#include "runtime/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace kiln {
namespace {

const std::vector<float> kLogits = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -3.0f};

// softmax(logits / t) in double.
std::vector<double> softmax(const std::vector<float>& l, double t) {
  std::vector<double> p(l.size());
  double mx = *std::max_element(l.begin(), l.end()), z = 0;
  for (size_t i = 0; i < l.size(); ++i) z += p[i] = std::exp((l[i] - mx) / t);
  for (auto& x : p) x /= z;
  return p;
}

// Keeps the tokens where keep[i], renormalized.
std::vector<double> restrict(std::vector<double> p, const std::vector<bool>& keep) {
  double z = 0;
  for (size_t i = 0; i < p.size(); ++i) z += keep[i] ? p[i] : 0;
  for (size_t i = 0; i < p.size(); ++i) p[i] = keep[i] ? p[i] / z : 0;
  return p;
}

// Upper 0.1% points of the chi-square distribution, by degrees of freedom.
double chi2_critical(int df) {
  static const double t[] = {0, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124};
  return t[df];
}

std::vector<int> draw_counts(const SamplingParams& p, int n, uint64_t seed) {
  std::vector<int> counts(kLogits.size(), 0);
  std::vector<int32_t> tokens{0};
  for (int i = 0; i < n; ++i) {
    std::vector<float> l = kLogits;
    SampleRow r;
    r.logits = l.data();
    r.params = &p;
    r.tokens = &tokens;
    r.prompt_len = 1;
    r.seed = seed;
    r.stream = 0;
    r.counter = uint64_t(i);
    ++counts[size_t(sample_row(r, int64_t(l.size())).id)];
  }
  return counts;
}

// Pearson's statistic over the tokens with expected probability > 0; tokens with 0 must never be drawn.
double chi2(const std::vector<int>& counts, const std::vector<double>& expected, int n, int* df) {
  double s = 0;
  *df = -1;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " is outside the distribution but was drawn";
      continue;
    }
    const double e = expected[i] * n;
    s += (counts[i] - e) * (counts[i] - e) / e;
    ++*df;
  }
  return s;
}

void expect_matches(const SamplingParams& p, const std::vector<double>& expected) {
  const int n = 40000;
  auto counts = draw_counts(p, n, 1234);
  int df;
  const double s = chi2(counts, expected, n, &df);
  ASSERT_GE(df, 1);
  EXPECT_LT(s, chi2_critical(df)) << "chi-square " << s << " with " << df << " degrees of freedom";
}

TEST(Sampling, TemperatureMatchesSoftmax) {
  SamplingParams p;
  p.temperature = 0.7f;
  expect_matches(p, softmax(kLogits, 0.7));
  p.temperature = 1.6f;
  expect_matches(p, softmax(kLogits, 1.6));
}

TEST(Sampling, ChiSquareDetectsTheWrongDistribution) {
  // The same draws judged against the distribution of another temperature must fail the test.
  SamplingParams p;
  p.temperature = 0.7f;
  auto counts = draw_counts(p, 40000, 1234);
  int df = 0;
  const double s = chi2(counts, softmax(kLogits, 1.0), 40000, &df);
  EXPECT_GT(s, chi2_critical(df));
}

TEST(Sampling, TopKMatchesRenormalizedTopK) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 3;
  expect_matches(p, restrict(softmax(kLogits, 1.0), {true, true, true, false, false, false, false, false}));
}

TEST(Sampling, TopPKeepsTokensWhileMassBeforeIsBelowP) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.8f;
  auto q = softmax(kLogits, 1.0);  // logits are sorted, so the prefix sums are the mass before each token
  std::vector<bool> keep(q.size());
  double before = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    keep[i] = before < 0.8;
    before += q[i];
  }
  ASSERT_EQ(std::count(keep.begin(), keep.end(), true), 4);  // 0.391 + 0.237 + 0.144 = 0.772 < 0.8
  expect_matches(p, restrict(q, keep));
}

TEST(Sampling, MinPDropsTokensBelowFractionOfTheBest) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.2f;
  auto q = softmax(kLogits, 1.0);
  std::vector<bool> keep(q.size());
  for (size_t i = 0; i < q.size(); ++i) keep[i] = q[i] >= 0.2 * q[0];  // exp(-1.5) = 0.223 kept, exp(-2) not
  ASSERT_EQ(std::count(keep.begin(), keep.end(), true), 4);
  expect_matches(p, restrict(q, keep));
}

TEST(Sampling, FiltersComposeAfterTemperature) {
  // temperature 0.5, top_k 5, then top_p 0.9 over the renormalized top 5, then min_p 0.05.
  SamplingParams p;
  p.temperature = 0.5f;
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
  expect_matches(p, restrict(q, keep));
}

TEST(Sampling, DistributionFunctionIsTheClosedForm) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 4;
  TokenDistribution d = sampling_distribution(kLogits.data(), int64_t(kLogits.size()), p);
  auto want = restrict(softmax(kLogits, double(p.temperature)), {true, true, true, true, false, false, false, false});
  ASSERT_EQ(d.ids.size(), 4u);
  for (size_t i = 0; i < d.ids.size(); ++i) EXPECT_NEAR(d.probs[i], want[size_t(d.ids[i])], 1e-12);
}

TEST(Sampling, GreedyTakesFirstMaximumAndReportsLogSoftmax) {
  std::vector<float> l = {0.5f, 3.0f, 3.0f, -1.0f};
  std::vector<int32_t> tokens{0};
  SamplingParams p;  // temperature 0
  SampleRow r;
  r.logits = l.data();
  r.params = &p;
  r.tokens = &tokens;
  r.prompt_len = 1;
  SampledToken t = sample_row(r, 4);
  EXPECT_EQ(t.id, 1);
  const double z = std::exp(0.5) + 2 * std::exp(3.0) + std::exp(-1.0);
  EXPECT_NEAR(t.log_prob, 3.0 - std::log(z), 1e-6);
}

TEST(Sampling, SampledLogProbIsOfTheFinalDistribution) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 2;
  std::vector<int32_t> tokens{0};
  std::vector<float> l = kLogits;
  SampleRow r;
  r.logits = l.data();
  r.params = &p;
  r.tokens = &tokens;
  r.prompt_len = 1;
  r.seed = 5;
  SampledToken t = sample_row(r, int64_t(l.size()));
  ASSERT_TRUE(t.id == 0 || t.id == 1);
  const double p0 = 1 / (1 + std::exp(-0.5));
  EXPECT_NEAR(t.log_prob, std::log(t.id == 0 ? p0 : 1 - p0), 1e-6);
}

TEST(Sampling, PenaltiesFollowTheirFormulas) {
  std::vector<float> l = {1.0f, 2.0f, -1.0f, 0.5f, -2.0f, 3.0f};
  const std::vector<int32_t> tokens = {1, 2, 2, 3, 3, 3};  // prompt {1, 2}; output {2, 3, 3, 3}
  SamplingParams p;
  p.repetition_penalty = 1.25f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  apply_penalties(l.data(), 6, p, tokens, 2);
  EXPECT_EQ(l[0], 1.0f);                          // never seen
  EXPECT_EQ(l[1], 2.0f / 1.25f);                  // prompt only: repetition (positive logit: divided)
  EXPECT_EQ(l[2], -1.0f * 1.25f - (0.5f + 0.25f * 1.0f));  // negative logit: multiplied; once in output
  EXPECT_EQ(l[3], 0.5f / 1.25f - (0.5f + 0.25f * 3.0f));   // three times in output
  EXPECT_EQ(l[4], -2.0f);
  EXPECT_EQ(l[5], 3.0f);
}

TEST(Sampling, PresenceAndFrequencyIgnoreThePrompt) {
  std::vector<float> l = {1.0f, 1.0f};
  SamplingParams p;
  p.presence_penalty = 1.0f;
  p.frequency_penalty = 1.0f;
  apply_penalties(l.data(), 2, p, {0, 0, 0}, 3);  // all prompt
  EXPECT_EQ(l[0], 1.0f);
  p.presence_penalty = -0.5f;  // negative values encourage
  apply_penalties(l.data(), 2, p, {0, 1, 1}, 1);
  EXPECT_EQ(l[1], 1.0f + 0.5f - 2.0f);
}

TEST(Sampling, BadWordsBanTheCompletingToken) {
  std::vector<float> l(6, 0.0f);
  const std::vector<std::vector<int32_t>> bad = {{4}, {1, 2, 5}, {3, 0}};
  apply_bad_words(l.data(), 6, bad, {7, 1, 2});
  EXPECT_TRUE(std::isinf(l[4]));  // single token: always
  EXPECT_TRUE(std::isinf(l[5]));  // 1 2 -> 5 completes
  EXPECT_EQ(l[0], 0.0f);          // 3 is not the last token
  EXPECT_EQ(l[1], 0.0f);
}

TEST(Sampling, EverythingBannedIsAnError) {
  std::vector<float> l(2, 0.0f);
  std::vector<int32_t> tokens{0};
  std::vector<std::vector<int32_t>> bad = {{0}, {1}};
  SamplingParams p;
  SampleRow r;
  r.logits = l.data();
  r.params = &p;
  r.tokens = &tokens;
  r.prompt_len = 1;
  r.bad_words = &bad;
  EXPECT_THROW(sample_row(r, 2), Error);
}

TEST(Sampling, SeededUniformIsAPureFunction) {
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

}  // namespace
}  // namespace kiln
