// Checking a greedy choice made on a backend (ModelRunner::step_greedy, or an argmax fused into the lm_head GEMV)
// against the logits it was made from: both come to the host, and every row's choice must be the first maximum
// of that row (the cpu backend's std::max_element).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace kiln::test {

struct GreedyRows {
  std::vector<int32_t> ids;   // [R]
  std::vector<float> logits;  // [R, V]
};

// ids: I32 [R], logits: F32 [R, V], both in `be`'s memory. `what` names the call in failure messages.
inline GreedyRows expect_first_argmax(Backend& be, const Tensor& ids, const Tensor& logits, const std::string& what) {
  const int64_t R = logits.dim(0), V = logits.dim(1);
  GreedyRows g{std::vector<int32_t>(static_cast<size_t>(R)), std::vector<float>(static_cast<size_t>(R * V))};
  EXPECT_EQ(ids.dim(0), R) << what;
  be.download(g.ids.data(), ids, g.ids.size() * 4);
  be.download(g.logits.data(), logits, g.logits.size() * 4);
  for (int64_t r = 0; r < R; ++r) {
    const float* row = g.logits.data() + r * V;
    EXPECT_EQ(g.ids[size_t(r)], int32_t(std::max_element(row, row + V) - row)) << what << ", row " << r;
  }
  return g;
}

}  // namespace kiln::test
