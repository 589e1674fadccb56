// Running Backend::sample and Backend::top_log_probs from host vectors on any backend (the cpu op tests and the
// cuda-against-cpu tests), and the closed-form distributions the draws are judged against.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/backend.h"

namespace kiln::test {

// The inputs of one call: logits [L, V] and the rows with their lists.
struct SampleCase {
  std::vector<float> logits;  // [L, V]
  int64_t V = 0;
  std::vector<SampleRowParams> rows;
  std::vector<PenaltyEntry> penalties;
  std::vector<int32_t> bans;
  int64_t L() const { return int64_t(logits.size()) / V; }
};

inline Tensor put_bytes(Backend& be, DType dt, std::vector<int64_t> shape, const void* data, size_t bytes) {
  Tensor t = be.alloc(dt, std::move(shape));
  if (bytes > 0) be.upload(t, data, bytes);
  return t;
}

// The case's tensors on `be`; the logits are uploaded once and read back after the call (the ops must not write
// them).
struct SampleInputs {
  Tensor logits, rows, penalties, bans;
  SampleInputs(Backend& be, const SampleCase& c) {
    logits = put_bytes(be, DType::F32, {c.L(), c.V}, c.logits.data(), c.logits.size() * 4);
    rows = put_bytes(be, DType::U8, {int64_t(c.rows.size() * sizeof(SampleRowParams))}, c.rows.data(),
                     c.rows.size() * sizeof(SampleRowParams));
    if (!c.penalties.empty())
      penalties = put_bytes(be, DType::I32, {int64_t(c.penalties.size()), 2}, c.penalties.data(),
                            c.penalties.size() * sizeof(PenaltyEntry));
    if (!c.bans.empty()) bans = put_bytes(be, DType::I32, {int64_t(c.bans.size())}, c.bans.data(), c.bans.size() * 4);
  }
  void expect_logits_unchanged(Backend& be, const SampleCase& c) const {
    std::vector<float> back(c.logits.size());
    be.download(back.data(), logits, back.size() * 4);
    EXPECT_TRUE(std::equal(back.begin(), back.end(), c.logits.begin(),
                           [](float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)); }))
        << "the op modified its logits";
  }
};

inline std::vector<SampledToken> run_sample(Backend& be, const SampleCase& c) {
  SampleInputs in(be, c);
  const int64_t R = int64_t(c.rows.size());
  SampleParams p{in.logits, in.rows, in.penalties, in.bans, be.alloc(DType::I32, {R}), be.alloc(DType::F32, {R})};
  be.sample(p);
  std::vector<int32_t> ids(static_cast<size_t>(R));
  std::vector<float> lp(static_cast<size_t>(R));
  be.download(ids.data(), p.ids, ids.size() * 4);
  be.download(lp.data(), p.log_probs, lp.size() * 4);
  in.expect_logits_unchanged(be, c);
  std::vector<SampledToken> out(static_cast<size_t>(R));
  for (size_t i = 0; i < out.size(); ++i) out[i] = {ids[i], lp[i]};
  return out;
}

struct TopLogProbs {
  std::vector<int32_t> ids;  // [R, k]
  std::vector<float> values;  // [R, k]
};

inline TopLogProbs run_top_log_probs(Backend& be, const SampleCase& c, int64_t k) {
  SampleInputs in(be, c);
  const int64_t R = int64_t(c.rows.size());
  TopLogProbsParams p;
  p.logits = in.logits;
  p.rows = in.rows;
  p.penalties = in.penalties;
  p.bans = in.bans;
  p.k = k;
  p.ids = be.alloc(DType::I32, {R, k});
  p.values = be.alloc(DType::F32, {R, k});
  be.top_log_probs(p);
  TopLogProbs t;
  t.ids.resize(size_t(R * k));
  t.values.resize(size_t(R * k));
  be.download(t.ids.data(), p.ids, t.ids.size() * 4);
  be.download(t.values.data(), p.values, t.values.size() * 4);
  in.expect_logits_unchanged(be, c);
  return t;
}

// softmax(logits / t) in double.
inline std::vector<double> softmax(const std::vector<float>& l, double t) {
  std::vector<double> p(l.size());
  double mx = *std::max_element(l.begin(), l.end()), z = 0;
  for (size_t i = 0; i < l.size(); ++i) z += p[i] = std::exp((l[i] - mx) / t);
  for (auto& x : p) x /= z;
  return p;
}

// Keeps the tokens where keep[i], renormalized.
inline std::vector<double> restrict_to(std::vector<double> p, const std::vector<bool>& keep) {
  double z = 0;
  for (size_t i = 0; i < p.size(); ++i) z += keep[i] ? p[i] : 0;
  for (size_t i = 0; i < p.size(); ++i) p[i] = keep[i] ? p[i] / z : 0;
  return p;
}

// Upper 0.1% points of the chi-square distribution, by degrees of freedom.
inline double chi2_critical(int df) {
  static const double t[] = {0, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124};
  return t[df];
}

// Pearson's statistic over the tokens with expected probability > 0; tokens with 0 must never be drawn.
inline double chi2(const std::vector<int>& counts, const std::vector<double>& expected, int n, int* df) {
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

// n draws from one logits row [V] (one op call of n rows with counters 0..n-1): how often each token came.
inline std::vector<int> draw_counts(Backend& be, const std::vector<float>& logits, const SampleRowParams& p, int n) {
  SampleCase c;
  c.logits = logits;
  c.V = int64_t(logits.size());
  for (int i = 0; i < n; ++i) {
    SampleRowParams r = p;
    r.counter = uint64_t(i);
    c.rows.push_back(r);
  }
  std::vector<int> counts(logits.size(), 0);
  for (const SampledToken& t : run_sample(be, c)) {
    if (t.id < 0 || t.id >= int32_t(logits.size())) {
      ADD_FAILURE() << "drew " << t.id;
      continue;
    }
    ++counts[size_t(t.id)];
  }
  return counts;
}

// Draws n tokens and judges them against `expected` (chi-square at the 0.1% level).
inline void expect_draws_match(Backend& be, const std::vector<float>& logits, const SampleRowParams& p,
                               const std::vector<double>& expected, int n = 40000) {
  const auto counts = draw_counts(be, logits, p, n);
  int df;
  const double s = chi2(counts, expected, n, &df);
  ASSERT_GE(df, 1);
  EXPECT_LT(s, chi2_critical(df)) << "chi-square " << s << " with " << df << " degrees of freedom";
}

}  // namespace kiln::test
