// kiln_gpu_bench sampling (was the CudaSampling.Timing test, which printed times and asserted nothing; what the
// sampling op computes is tested in tests/backend_cuda/sampling_test.cpp).
#include "sampling_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"

namespace kiln {
namespace {

using Clock = std::chrono::steady_clock;

// L rows of V logits: normal (scale 3), every other row quantized to 1/8 (ties at every threshold), about one in
// 97 entries -inf: the inputs of the sampling tests.
std::vector<float> bench_logits(int64_t L, int64_t V, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.f, 3.f);
  std::vector<float> l(static_cast<size_t>(L * V));
  for (int64_t r = 0; r < L; ++r)
    for (int64_t v = 0; v < V; ++v) {
      float x = n(g);
      if (r % 2 == 1) x = std::round(x * 8.f) / 8.f;
      if (g() % 97 == 0) x = -INFINITY;
      l[size_t(r * V + v)] = x;
    }
  return l;
}

struct Setting {
  const char* name;
  float temperature;
  int32_t top_k;
  float top_p, min_p;
};

}  // namespace

nlohmann::json sampling_bench(int64_t reps) {
  constexpr int64_t V = 128256;
  constexpr int kCalls = 20;
  auto be = make_cuda_backend(DType::BF16);
  const Setting settings[] = {{"greedy", 0.f, 0, 1.f, 0.f},          {"temperature", 1.f, 0, 1.f, 0.f},
                              {"top_k 50", 1.f, 50, 1.f, 0.f},       {"top_p 0.9", 1.f, 0, 0.9f, 0.f},
                              {"top_k 50 top_p 0.9", 1.f, 50, 0.9f, 0.f}, {"all", 0.8f, 100, 0.95f, 0.05f}};
  nlohmann::json results = nlohmann::json::array();
  for (int64_t R : {int64_t(1), int64_t(64)}) {
    const std::vector<float> host = bench_logits(R, V, 3);
    Tensor logits = be->alloc(DType::F32, {R, V});
    be->upload(logits, host.data(), host.size() * sizeof(float));
    Tensor rows = be->alloc(DType::U8, {R * int64_t(sizeof(SampleRowParams))});
    Tensor ids = be->alloc(DType::I32, {R}), lp = be->alloc(DType::F32, {R});
    for (const Setting& s : settings) {
      std::vector<SampleRowParams> p(static_cast<size_t>(R));
      for (int64_t r = 0; r < R; ++r) {
        SampleRowParams& q = p[size_t(r)];
        q.temperature = s.temperature;
        q.top_k = s.top_k;
        q.top_p = s.top_p;
        q.min_p = s.min_p;
        q.seed = 1000 + uint64_t(r);
        q.logits_row = int32_t(r);
      }
      be->upload(rows, p.data(), p.size() * sizeof(SampleRowParams));
      SampleParams sp{logits, rows, Tensor(), Tensor(), ids, lp};
      be->sample(sp);  // warm-up: workspaces allocated
      be->synchronize();
      std::vector<double> us;
      for (int64_t i = 0; i < std::max<int64_t>(reps, 1); ++i) {
        const auto t0 = Clock::now();
        for (int c = 0; c < kCalls; ++c) be->sample(sp);
        be->synchronize();
        us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / kCalls);
      }
      std::sort(us.begin(), us.end());
      results.push_back({{"rows", R}, {"setting", s.name}, {"us_per_call", us[us.size() / 2]},
                         {"min_us_per_call", us.front()}, {"calls_per_timing", kCalls}, {"timings", us.size()}});
    }
  }
  return {{"bench", "sampling"}, {"vocab", V}, {"results", results}};
}

}  // namespace kiln
