// Independence on the cpu backend, for every fixture model: a request's tokens, log-probs and beam scores are the
// same alone and in a busy batch, under both policies, with preemption and recompute, chunked context and prefix
// reuse (the scenarios: executor_scenarios.h; the cuda batch-invariant engines run the same ones).
#include <gtest/gtest.h>

#include "executor_scenarios.h"

namespace kiln::test {
namespace {

class Independence : public ::testing::TestWithParam<std::string> {};

TEST_P(Independence, ConcurrentEqualsAlone) { check_independence(engine_for(GetParam())); }

INSTANTIATE_TEST_SUITE_P(Models, Independence, ::testing::ValuesIn(fixture_models()), [](const auto& info) {
  std::string n = info.param;
  for (auto& ch : n)
    if (ch == '-') ch = '_';
  return n;
});

}  // namespace
}  // namespace kiln::test
