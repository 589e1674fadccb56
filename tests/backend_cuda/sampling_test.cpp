// The cuda backend's sample and top_log_probs ops (src/backend/cuda/sampling.cu) against the cpu backend's (the
// reference) on the same logits: the same ids for every parameter combination (penalties, bans, top-k, top-p,
// min-p together, rows sharing a logits row, ties at every threshold, -inf logits, everything banned), log-probs
// within 1e-4; a chi-square test of the cuda draws against the closed-form distribution. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "backend_cuda/cuda_test_util.h"
#include "common/sampling_util.h"

namespace kiln::test {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

class CudaSampling : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << no_gpu_message();
    gpu = cuda_backend(DType::BF16);
  }
  CpuBackend cpu{4};
  std::unique_ptr<Backend> gpu;
};

// L logits rows of V values: normal-ish (scale 3), every other row quantized to 1/8 (many exact ties at every
// threshold), a few -inf entries.
std::vector<float> random_logits(int64_t L, int64_t V, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.f, 3.f);
  std::vector<float> l(size_t(L * V));
  for (int64_t r = 0; r < L; ++r)
    for (int64_t v = 0; v < V; ++v) {
      float x = n(g);
      if (r % 2 == 1) x = std::round(x * 8.f) / 8.f;
      if (g() % 97 == 0) x = -kInf;
      l[size_t(r * V + v)] = x;
    }
  return l;
}

// Row i's parameters: a walk through every combination of the filters, penalties and bans.
SampleRowParams row_params(int i, int64_t V, SampleCase& c, std::mt19937& g) {
  static const float temps[] = {0.f, 0.7f, 1.0f, 1.6f};
  static const int32_t top_ks[] = {0, 1, 5, 50, 1000};
  static const float top_ps[] = {1.f, 0.9f, 0.5f, 0.05f};
  static const float min_ps[] = {0.f, 0.05f, 0.3f};
  SampleRowParams p;
  p.temperature = temps[i % 4];
  p.top_k = top_ks[(i / 4) % 5];
  p.top_p = top_ps[(i / 20) % 4];
  p.min_p = min_ps[(i / 3) % 3];
  p.want_log_prob = i % 2;
  p.seed = 1000 + uint64_t(i) * 7;
  p.stream = uint64_t(i % 3);
  p.counter = uint64_t(i);
  p.logits_row = int32_t(i % c.L());
  if (i % 5 != 0) {  // penalties over some distinct ids
    p.repetition_penalty = (i % 3 == 0) ? 1.3f : 1.0f;
    p.presence_penalty = (i % 2 == 0) ? 0.4f : 0.0f;
    p.frequency_penalty = 0.25f;
    p.pen_begin = int32_t(c.penalties.size());
    std::vector<int32_t> ids(static_cast<size_t>(V));
    for (int64_t v = 0; v < V; ++v) ids[size_t(v)] = int32_t(v);
    std::shuffle(ids.begin(), ids.end(), g);
    for (int j = 0; j < 40; ++j) c.penalties.push_back({ids[size_t(j)], int32_t(g() % 4)});
    p.pen_end = int32_t(c.penalties.size());
  }
  if (i % 4 != 1) {  // bans, some of them duplicated or outside the vocabulary
    p.ban_begin = int32_t(c.bans.size());
    for (int j = 0; j < 10; ++j) c.bans.push_back(int32_t(g() % uint32_t(V)));
    c.bans.push_back(c.bans.back());
    c.bans.push_back(int32_t(V) + 5);
    p.ban_end = int32_t(c.bans.size());
  }
  return p;
}

void expect_same_tokens(const std::vector<SampledToken>& want, const std::vector<SampledToken>& got,
                        const SampleCase& c, const std::string& what) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t r = 0; r < want.size(); ++r) {
    const SampleRowParams& p = c.rows[r];
    SCOPED_TRACE(what + " row " + std::to_string(r) + " T " + std::to_string(p.temperature) + " top_k " +
                 std::to_string(p.top_k) + " top_p " + std::to_string(p.top_p) + " min_p " + std::to_string(p.min_p));
    EXPECT_EQ(got[r].id, want[r].id);
    if (std::isinf(want[r].log_prob)) {
      EXPECT_EQ(got[r].log_prob, want[r].log_prob);
    } else {
      EXPECT_NEAR(got[r].log_prob, want[r].log_prob, 1e-4);
    }
  }
}

TEST_F(CudaSampling, SameTokensAsCpuForEveryCombination) {
  for (int64_t V : {1000, 128256}) {
    for (int64_t R : {1, 7, 64, 160}) {
      if (V > 1000 && R > 64) continue;
      std::mt19937 g(uint32_t(V + R));
      SampleCase c;
      c.V = V;
      c.logits = random_logits(std::max<int64_t>(1, R / 3), V, uint32_t(R));
      for (int i = 0; i < R; ++i) c.rows.push_back(row_params(R == 1 ? 9 : i, V, c, g));
      const auto want = run_sample(cpu, c), got = run_sample(*gpu, c);
      expect_same_tokens(want, got, c, "V " + std::to_string(V) + " R " + std::to_string(R));
    }
  }
}

TEST_F(CudaSampling, EdgeRowsMatchCpu) {
  const int64_t V = 1000;
  SampleCase c;
  c.V = V;
  c.logits = random_logits(2, V, 5);
  c.logits[417] = 1.0f;  // the one token left (finite)
  for (int64_t v = 0; v < V; ++v) c.bans.push_back(int32_t(v));  // every id
  for (int64_t v = 0; v < V; ++v)
    if (v != 417) c.bans.push_back(int32_t(v));  // all but one
  SampleRowParams greedy, hot;
  greedy.want_log_prob = 1;
  hot.temperature = 0.8f;
  hot.top_k = 3;
  hot.top_p = 0.5f;
  hot.min_p = 0.2f;
  for (SampleRowParams base : {greedy, hot}) {
    SampleRowParams p = base;
    p.ban_begin = 0, p.ban_end = int32_t(V);  // everything banned: kNoToken
    c.rows.push_back(p);
    p.ban_begin = int32_t(V), p.ban_end = int32_t(2 * V - 1);  // one token left: that token, log-prob 0
    c.rows.push_back(p);
    p = base;
    p.logits_row = 2;  // no such logits row: kBadRow
    c.rows.push_back(p);
    p = base;
    p.temperature = base.temperature > 0 ? 1e-3f : 0.f;  // tiny temperature: weights underflow to 0
    c.rows.push_back(p);
    p.top_p = 0.f;  // keeps the first token only
    c.rows.push_back(p);
  }
  const auto want = run_sample(cpu, c), got = run_sample(*gpu, c);
  expect_same_tokens(want, got, c, "edge");
  EXPECT_EQ(got[0].id, kNoToken);
  EXPECT_EQ(got[1].id, 417);
  EXPECT_EQ(got[2].id, kBadRow);
  EXPECT_EQ(got[5].id, kNoToken);
  EXPECT_EQ(got[6].id, 417);
  EXPECT_NEAR(got[6].log_prob, 0.f, 1e-6);
  EXPECT_EQ(got[7].id, kBadRow);
}

TEST_F(CudaSampling, RepeatedRowsDrawLikeTheCpuAndTheClosedForm) {
  // 40000 rows reading one logits row (the n samples of one prompt), counters 0..n-1: the cuda draws equal the
  // cpu's one by one and pass the chi-square test against the closed form.
  const std::vector<float> l = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -3.0f};
  SampleRowParams p;
  p.temperature = 0.9f;
  p.top_k = 6;
  p.top_p = 0.85f;
  p.seed = 99;
  auto q = softmax(l, 0.9);
  std::vector<bool> keep(8, false);
  double z6 = 0, before = 0;
  for (int i = 0; i < 6; ++i) z6 += q[size_t(i)];
  for (int i = 0; i < 6; ++i) {
    keep[size_t(i)] = before < 0.85;
    before += q[size_t(i)] / z6;
  }
  expect_draws_match(*gpu, l, p, restrict_to(q, keep));
  EXPECT_EQ(draw_counts(*gpu, l, p, 40000), draw_counts(cpu, l, p, 40000));
  SampleCase c;
  c.logits = l;
  c.V = 8;
  for (int i = 0; i < 2000; ++i) {
    p.counter = uint64_t(i);
    c.rows.push_back(p);
  }
  expect_same_tokens(run_sample(cpu, c), run_sample(*gpu, c), c, "repeated");
}

TEST_F(CudaSampling, TopLogProbsMatchCpu) {
  for (int64_t V : {1000, 128256}) {
    for (int64_t k : {1, 8, 40, 1000}) {
      std::mt19937 g(uint32_t(V * k));
      SampleCase c;
      c.V = V;
      c.logits = random_logits(4, V, uint32_t(k));
      for (int i = 0; i < 9; ++i) {
        SampleRowParams p = row_params(i, V, c, g);
        p.logits_row = i % 4;
        c.rows.push_back(p);
      }
      const auto want = run_top_log_probs(cpu, c, k), got = run_top_log_probs(*gpu, c, k);
      for (size_t i = 0; i < want.ids.size(); ++i) {
        SCOPED_TRACE("V " + std::to_string(V) + " k " + std::to_string(k) + " row " + std::to_string(i / size_t(k)) +
                     " rank " + std::to_string(i % size_t(k)));
        ASSERT_EQ(got.ids[i], want.ids[i]);
        if (std::isinf(want.values[i])) {
          EXPECT_EQ(got.values[i], want.values[i]);
        } else {
          EXPECT_NEAR(got.values[i], want.values[i], 1e-4);
        }
      }
    }
  }
}

}  // namespace
}  // namespace kiln::test
