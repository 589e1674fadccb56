// The executor on cuda batch-invariant engines (kiln build --batch-invariant) of the fixture models: the cpu
// independence scenarios (tests/runtime/executor_scenarios.h: alone vs. busy batch under both policies, preemption
// and recompute in a tiny pool, chunked context, prefix reuse; tokens, log-probs and beam scores bit for bit) and
// the cancellation scenarios. Each test loads its own engine (freed before the CUDA runtime goes). Skips without a
// GPU.
#include <gtest/gtest.h>

#include "backend_cuda/cuda_test_util.h"
#include "runtime/executor_scenarios.h"

namespace kiln::test {
namespace {

TestEngineLimits invariant_limits(const std::string& dtype) {
  TestEngineLimits l;
  l.target = "cuda";
  l.dtype = dtype;
  l.batch_invariant = true;
  l.max_num_tokens = 256;  // fewer GEMM buckets to plan; the workload's prompts are short
  return l;
}

struct ModelDtype {
  std::string model, dtype;
};
void PrintTo(const ModelDtype& c, std::ostream* os) { *os << c.model << " " << c.dtype; }

class CudaInvariantIndependence : public ::testing::TestWithParam<ModelDtype> {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << no_gpu_message();
  }
};

TEST_P(CudaInvariantIndependence, ConcurrentEqualsAlone) {
  auto e = Engine::load(engine_dir(GetParam().model, invariant_limits(GetParam().dtype)));
  ASSERT_TRUE(e->info().batch_invariant);
  check_independence(*e);
}

std::vector<ModelDtype> invariant_cases() {
  std::vector<ModelDtype> v;
  for (const std::string& m : fixture_models()) v.push_back({m, "float16"});
  for (const char* m : {"llama", "llama31", "qwen3", "gpt2", "mixtral"}) v.push_back({m, "bfloat16"});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Models, CudaInvariantIndependence, ::testing::ValuesIn(invariant_cases()),
                         [](const auto& info) {
                           std::string n = info.param.model + "_" + info.param.dtype;
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

class CudaInvariantCancellation : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << no_gpu_message();
  }
};

TEST_P(CudaInvariantCancellation, MidGenerationFreesEveryBlock) {
  auto e = Engine::load(engine_dir("llama", invariant_limits(GetParam())));
  check_cancellation_mid_generation(*e);
}

TEST_P(CudaInvariantCancellation, QueuedRequestsAndBeamSearches) {
  auto e = Engine::load(engine_dir("llama", invariant_limits(GetParam())));
  check_cancelling_queued(*e);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaInvariantCancellation, ::testing::Values("float16", "bfloat16"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kiln::test
