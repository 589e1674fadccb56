// The host's part of sampling (src/runtime/sampling.h): penalty lists (distinct tokens, output counts), ban lists
// (bad words), rows built from requests, and the penalties they produce through the cpu backend's math.
#include "runtime/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cpu/sampling.h"

namespace kiln {
namespace {

TEST(SamplingLists, PenaltyEntriesAreDistinctTokensWithOutputCounts) {
  SamplingParams p;
  p.repetition_penalty = 1.25f;
  std::vector<PenaltyEntry> e;
  append_penalty_entries(e, p, {1, 2, 2, 3, 3, 3, 1, 9}, 2, 8);  // prompt {1, 2}; 9 is outside the vocabulary
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].id, 1);
  EXPECT_EQ(e[0].count, 1);
  EXPECT_EQ(e[1].id, 2);
  EXPECT_EQ(e[1].count, 1);
  EXPECT_EQ(e[2].id, 3);
  EXPECT_EQ(e[2].count, 3);
  // Without the repetition penalty only output tokens matter; without any penalty nothing is listed.
  p.repetition_penalty = 1.0f;
  p.presence_penalty = 0.5f;
  e.clear();
  append_penalty_entries(e, p, {4, 4, 5}, 2, 8);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].id, 5);
  p.presence_penalty = 0.0f;
  e.clear();
  append_penalty_entries(e, p, {4, 4, 5}, 2, 8);
  EXPECT_TRUE(e.empty());
}

TEST(SamplingLists, PenaltiesFollowTheirFormulas) {
  std::vector<float> l = {1.0f, 2.0f, -1.0f, 0.5f, -2.0f, 3.0f};
  Request r;
  r.sampling.repetition_penalty = 1.25f;
  r.sampling.presence_penalty = 0.5f;
  r.sampling.frequency_penalty = 0.25f;
  SampleBatch b;
  const SampleRowParams& p = b.add(0, r, {1, 2, 2, 3, 3, 3}, 2, 6);  // prompt {1, 2}; output {2, 3, 3, 3}
  apply_penalties_and_bans(l.data(), 6, p, SampleLists{b.penalties.data(), int64_t(b.penalties.size()), nullptr, 0});
  EXPECT_EQ(l[0], 1.0f);                                   // never seen
  EXPECT_EQ(l[1], 2.0f / 1.25f);                           // prompt only: repetition (positive logit: divided)
  EXPECT_EQ(l[2], -1.0f * 1.25f - (0.5f + 0.25f * 1.0f));  // negative logit: multiplied; once in output
  EXPECT_EQ(l[3], 0.5f / 1.25f - (0.5f + 0.25f * 3.0f));   // three times in output
  EXPECT_EQ(l[4], -2.0f);
  EXPECT_EQ(l[5], 3.0f);
}

TEST(SamplingLists, PresenceAndFrequencyIgnoreThePrompt) {
  Request r;
  r.sampling.presence_penalty = 1.0f;
  r.sampling.frequency_penalty = 1.0f;
  SampleBatch b;
  std::vector<float> l = {1.0f, 1.0f};
  const SampleRowParams& p = b.add(0, r, {0, 0, 0}, 3, 2);  // all prompt
  apply_penalties_and_bans(l.data(), 2, p, SampleLists{b.penalties.data(), int64_t(b.penalties.size()), nullptr, 0});
  EXPECT_EQ(l[0], 1.0f);
  r.sampling.presence_penalty = -0.5f;  // negative values encourage
  const SampleRowParams& q = b.add(0, r, {0, 1, 1}, 1, 2);
  apply_penalties_and_bans(l.data(), 2, q, SampleLists{b.penalties.data(), int64_t(b.penalties.size()), nullptr, 0});
  EXPECT_EQ(l[1], 1.0f + 0.5f - 2.0f);
}

TEST(SamplingLists, BadWordsBanTheCompletingToken) {
  std::vector<int32_t> bans;
  append_banned_ids(bans, {{4}, {1, 2, 5}, {3, 0}, {1, 2, 7}}, {7, 1, 2}, 6);  // 7 is outside the vocabulary
  EXPECT_EQ(bans, (std::vector<int32_t>{4, 5}));  // single token: always; 1 2 -> 5 completes; 3 is not last
}

TEST(SamplingLists, RowsCarryTheRequestsParametersAndRanges) {
  Request a, c;
  a.sampling.temperature = 0.7f;
  a.sampling.top_k = 5;
  a.sampling.top_p = 0.9f;
  a.sampling.min_p = 0.1f;
  a.sampling.frequency_penalty = 0.5f;
  a.bad_words = {{3}};
  SampleBatch b;
  b.add(4, a, {1, 2, 2}, 1, 10);
  b.add(0, c, {1, 2}, 1, 10);
  b.add(4, a, {1, 6}, 1, 10);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b.rows[0].logits_row, 4);
  EXPECT_EQ(b.rows[0].temperature, 0.7f);
  EXPECT_EQ(b.rows[0].top_k, 5);
  EXPECT_EQ(b.rows[0].top_p, 0.9f);
  EXPECT_EQ(b.rows[0].min_p, 0.1f);
  EXPECT_EQ(b.rows[0].pen_begin, 0);
  EXPECT_EQ(b.rows[0].pen_end, 1);  // token 2, twice
  EXPECT_EQ(b.rows[1].pen_begin, 1);
  EXPECT_EQ(b.rows[1].pen_end, 1);
  EXPECT_EQ(b.rows[2].pen_begin, 1);
  EXPECT_EQ(b.rows[2].pen_end, 2);
  EXPECT_EQ(b.penalties[0].count, 2);
  EXPECT_EQ(b.penalties[1].id, 6);
  EXPECT_EQ(b.rows[0].ban_end - b.rows[0].ban_begin, 1);
  EXPECT_EQ(b.rows[1].ban_end - b.rows[1].ban_begin, 0);
  EXPECT_EQ(b.rows[2].ban_begin, 1);
  EXPECT_EQ(b.bans, (std::vector<int32_t>{3, 3}));
}

}  // namespace
}  // namespace kiln
