// rolling_windows (src/runtime/perplexity.h): lm-eval's loglikelihood_rolling windows, in closed form.
#include <gtest/gtest.h>

#include "runtime/perplexity.h"

namespace kiln {
namespace {

TEST(RollingWindows, DisjointWithPreviousTokensAsContext) {
  const std::vector<int32_t> t = {10, 11, 12, 13, 14, 15, 16};
  const auto w = rolling_windows(t, 0, 3);
  ASSERT_EQ(w.size(), 3u);
  // [BOS, 10, 11] predicts 10, 11, 12; [12, 13, 14] predicts 13, 14, 15; [13, 14, 15] predicts 16 only.
  EXPECT_EQ(w[0].input, (std::vector<int32_t>{0, 10, 11}));
  EXPECT_EQ(w[0].predicted, 3);
  EXPECT_EQ(w[0].last, 12);
  EXPECT_EQ(w[1].input, (std::vector<int32_t>{12, 13, 14}));
  EXPECT_EQ(w[1].predicted, 3);
  EXPECT_EQ(w[1].last, 15);
  EXPECT_EQ(w[2].input, (std::vector<int32_t>{13, 14, 15}));
  EXPECT_EQ(w[2].predicted, 1);
  EXPECT_EQ(w[2].last, 16);
  // A document shorter than a window: one window.
  const auto s = rolling_windows({7, 8}, 1, 5);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].input, (std::vector<int32_t>{1, 7}));
  EXPECT_EQ(s[0].predicted, 2);
  EXPECT_EQ(s[0].last, 8);
  EXPECT_TRUE(rolling_windows({}, 1, 5).empty());
}

}  // namespace
}  // namespace kiln
