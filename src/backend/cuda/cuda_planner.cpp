#include "backend/cuda/cuda_planner.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "backend/cuda/batch_invariant.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace kiln {

namespace {

constexpr float kGemvMargin = 0.9f;  // cuBLASLt against the GEMV at decode row counts (see plan_cuda_engine)
constexpr int64_t kGemvLongRow = int64_t(24) << 10;  // bytes of a weight row from which the GEMV takes unroll 8

struct GemmShape {
  std::string what;  // for messages
  int64_t N = 0, K = 0;
  bool bias = false;
  DType out_dt = DType::BF16;
  int64_t max_m = 0;  // largest row count the engine runs this GEMM with
};

std::vector<GemmShape> engine_gemms(const BackendConfig& info, DType dt) {
  const ModelConfig& m = info.model;
  const BackendLimits& l = info.limits;
  const int64_t H = m.hidden_size, I = m.intermediate_size, T = l.max_num_tokens;
  std::vector<GemmShape> g;
  g.push_back({"qkv", m.qkv_size(), H, m.qkv_bias, dt, T});
  g.push_back({"dense", H, m.q_size(), m.dense_bias, dt, T});
  if (m.num_experts > 0) {
    g.push_back({"router", m.num_experts, H, false, DType::F32, T});
  } else {
    g.push_back({"gate_up/fc", (m.activation == Activation::SiluGated ? 2 : 1) * I, H, m.mlp_bias, dt, T});
    g.push_back({"down", H, I, m.mlp_bias, dt, T});
  }
  // logits: one row per sequence in generation (more only for --logits-out style requests)
  g.push_back({"lm_head", m.vocab_size, H, false, DType::F32, std::min(T, l.max_batch_size * l.max_beam_width)});
  return g;
}

std::vector<int64_t> buckets(int64_t max_m) {
  std::vector<int64_t> b;
  for (int64_t m = 1; m < max_m; m *= 2) b.push_back(m);
  b.push_back(max_m);
  return b;
}

// Median time (microseconds) of `reps` runs, each on a different copy of the weights when they fit several
// times in the pool (so small GEMMs are not timed out of L2).
template <class F>
float time_us(cudaStream_t s, int reps, F&& run) {
  cudaEvent_t a, b;
  KILN_CUDA_CHECK(cudaEventCreate(&a));
  KILN_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 2; ++i) run(i);
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    KILN_CUDA_CHECK(cudaEventRecord(a, s));
    run(i);
    KILN_CUDA_CHECK(cudaEventRecord(b, s));
    KILN_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms * 1000.f);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

// Row r of a GEMM's output, as bytes.
std::vector<uint8_t> output_row(const cuda::GemmArgs& a, int64_t r, cudaStream_t s) {
  const size_t row = size_t(a.N) * dtype_size(a.out_dt);
  std::vector<uint8_t> out(row);
  KILN_CUDA_CHECK(cudaMemcpyAsync(out.data(), static_cast<const uint8_t*>(a.out) + size_t(r) * row, row,
                                  cudaMemcpyDeviceToHost, s));
  KILN_CUDA_CHECK(cudaStreamSynchronize(s));
  return out;
}

// The rows of a run with M rows that the invariance check compares: the first 8 and the last.
std::set<int64_t> probed_rows(int64_t M) {
  std::set<int64_t> r{M - 1};
  for (int64_t i = 0; i < std::min<int64_t>(M, 8); ++i) r.insert(i);
  return r;
}

// Batch-invariant engines (batch_invariant.h): one algorithm for every bucket. Candidates: the heuristics' offers at
// the smallest, a middle and the largest bucket, without split-K, that cuBLASLt accepts for every bucket; ranked by
// the sum over buckets of their time over the bucket's best; the first whose probed rows at every bucket are
// bit-identical to the same rows of a run at the largest wins. `a` has x, w, bias, out, N, K and the dtypes set;
// time_bucket(M, tactic) times it (throws Error when the algorithm fails).
template <class Time>
nlohmann::json plan_invariant_gemm(cuda::GemmRunner& runner, cudaStream_t s, const GemmShape& g, cuda::GemmArgs a,
                                   Time&& time_bucket) {
  const std::vector<int64_t> ms = buckets(g.max_m);
  auto at = [&](int64_t M) {
    cuda::GemmArgs r = a;
    r.M = M;
    return r;
  };
  std::vector<cuda::GemmTactic> cands;
  std::set<std::string> seen;
  for (int64_t M : {ms.front(), ms[ms.size() / 2], ms.back()}) {
    for (auto& h : runner.heuristics(at(M), 8)) {
      cuda::GemmTactic t;
      t.algo = cuda::GemmRunner::without_split_k(h);
      t.has_algo = true;
      if (!seen.insert(cuda::GemmRunner::algo_to_hex(t.algo)).second) continue;
      auto runs = [&](int64_t m) { return runner.accepts(at(m), t.algo); };
      if (std::all_of(ms.begin(), ms.end(), runs)) cands.push_back(t);
    }
  }
  std::vector<std::vector<float>> us(cands.size());  // [candidate][bucket]; < 0: the algorithm failed
  std::vector<float> best(ms.size(), 1e30f);
  for (size_t c = 0; c < cands.size(); ++c) {
    for (size_t b = 0; b < ms.size(); ++b) {
      float v = -1.f;
      try {
        v = time_bucket(ms[b], cands[c]);
        best[b] = std::min(best[b], v);
      } catch (const Error&) {
        cudaGetLastError();
      }
      us[c].push_back(v);
    }
  }
  std::vector<std::pair<double, size_t>> order;  // (score, candidate)
  for (size_t c = 0; c < cands.size(); ++c) {
    double score = 0;
    for (size_t b = 0; b < ms.size() && score >= 0; ++b) score = us[c][b] < 0 ? -1 : score + us[c][b] / best[b];
    if (score >= 0) order.push_back({score, c});
  }
  std::sort(order.begin(), order.end());
  std::set<int64_t> rows;
  for (int64_t M : ms) rows.merge(probed_rows(M));
  for (auto [score, c] : order) {
    runner.run(at(ms.back()), cands[c]);
    std::map<int64_t, std::vector<uint8_t>> ref;
    for (int64_t r : rows) ref[r] = output_row(a, r, s);
    bool same = true;
    for (size_t b = 0; b + 1 < ms.size() && same; ++b) {
      runner.run(at(ms[b]), cands[c]);
      for (int64_t r : probed_rows(ms[b])) same = same && output_row(a, r, s) == ref[r];
    }
    if (same)
      return {{"max_m", g.max_m}, {"kind", "cublaslt"}, {"algo", cuda::GemmRunner::algo_to_hex(cands[c].algo)},
              {"score", score}, {"us", us[c]}};
  }
  fail("--batch-invariant: no cuBLASLt algorithm without split-K gives GEMM {} ({} x {}) the same rows for 1 to {} "
       "rows", g.what, g.N, g.K, g.max_m);
}

struct DeviceMem {
  void* p = nullptr;
  explicit DeviceMem(size_t bytes) {
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 256));
    if (e != cudaSuccess) {
      cudaGetLastError();
      fail("kiln build --target cuda: cannot allocate {} bytes of GPU memory for autotuning", bytes);
    }
  }
  ~DeviceMem() { cudaFree(p); }
};

}  // namespace

CudaPlan plan_cuda_engine(const BackendConfig& info, std::optional<DType> dtype) {
  if (info.batch_invariant) {
    if (const std::string why = cuda::batch_invariant_unsupported(info.model); !why.empty())
      fail("--batch-invariant: the cuda target cannot run this model batch-invariant: {}", why);
  }
  if (cuda_device_count() == 0)
    fail("--target cuda: no CUDA GPU on this machine (a cuda engine is built on the GPU it will run on)");
  const DType dt = dtype.value_or(info.model.dtype == DType::F16 ? DType::F16 : DType::BF16);
  if (dt != DType::F16 && dt != DType::BF16)
    fail("--dtype {}: the cuda target computes in float16 or bfloat16", dtype_name(dt));
  CudaPlan plan;
  plan.weight_dtype = dt;
  plan.compute_dtype = dt;
  const int device = info.model.mapping.device_ordinal();  // the rank's device: the engine is built where it runs
  plan.gpu_arch = cuda_device_arch(device);

  KILN_CUDA_CHECK(cudaSetDevice(device));
  cudaStream_t s;
  KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  nlohmann::json gemms = nlohmann::json::object();
  {
    cuda::GemmRunner runner(s);
    const auto shapes = engine_gemms(info, dt);
    int64_t max_w = 0, max_x = 0, max_o = 0;
    for (auto& g : shapes) {
      max_w = std::max(max_w, g.N * g.K);
      max_x = std::max(max_x, g.max_m * g.K);
      max_o = std::max<int64_t>(max_o, g.max_m * g.N * int64_t(dtype_size(g.out_dt)));
    }
    const int64_t pool_elems = std::max<int64_t>(max_w, int64_t(192) << 20);  // >= 384 MB: several L2s
    DeviceMem w{size_t(pool_elems) * 2}, x{size_t(max_x) * 2}, o{size_t(max_o)}, bias{size_t(16) << 20};
    auto fill = [&](void* p, int64_t n, uint64_t seed) {
      cuda::RandomKParams r;
      r.out = p;
      r.n = n;
      r.seed = seed;
      r.scale = 0.5f;
      r.dt = dt;
      cuda::invoke(r, s);
    };
    fill(w.p, pool_elems, 1);
    fill(x.p, max_x, 2);
    fill(bias.p, int64_t(8) << 20, 3);
    for (auto& g : shapes) {
      if (g.bias && g.N > (int64_t(8) << 20)) fail("autotune: bias of {} elements", g.N);
      const int64_t copies = std::clamp<int64_t>(pool_elems / (g.N * g.K), 1, 8);
      cuda::GemmArgs a;
      a.x = x.p;
      a.w = w.p;
      a.bias = g.bias ? bias.p : nullptr;
      a.out = o.p;
      a.N = g.N;
      a.K = g.K;
      a.dt = dt;
      a.out_dt = g.out_dt;
      auto time_tactic = [&](int64_t M, const cuda::GemmTactic& t) {
        // repetitions: about 2 ms of GEMMs per candidate, 3 to 10 runs
        const double flops = 2.0 * double(M) * double(g.N) * double(g.K);
        const double est_us = std::max(flops / 400e6, double(g.N * g.K) * 2 / 2.5e6);
        const int reps = int(std::clamp(2000.0 / est_us, 3.0, 10.0));
        return time_us(s, reps, [&](int i) {
          cuda::GemmArgs r = a;
          r.M = M;
          r.w = static_cast<const uint16_t*>(w.p) + (i % copies) * g.N * g.K;
          runner.run(r, t);
        });
      };
      const std::string key = cuda::gemm_key(g.N, g.K, dt, g.out_dt, g.bias);
      if (info.batch_invariant) {
        gemms[key] = nlohmann::json::array({plan_invariant_gemm(runner, s, g, a, time_tactic)});
        continue;
      }
      nlohmann::json list = nlohmann::json::array();
      for (int64_t M : buckets(g.max_m)) {
        a.M = M;
        nlohmann::json best;
        float best_us = 1e30f;
        float gemv_us = 1e30f;  // the best GEMV tactic's time
        if (cuda::GemvKParams::supports(M, g.K)) {
          // Rows of 24 KB or more (the 8B down projection's 28 KB) take unroll 8: more loads in flight per warp.
          // Timed alone the two are within noise, in the decode step 8 was 0.3-1.5% faster (H100, session 5).
          const bool long_rows = g.K * int64_t(dtype_size(dt)) >= kGemvLongRow;
          for (int unroll : long_rows ? std::vector<int>{8} : std::vector<int>{4, 8}) {
            cuda::GemmTactic t;
            t.kind = cuda::GemmTactic::Gemv;
            t.gemv_unroll = unroll;
            const float us = time_tactic(M, t);
            // The deeper unroll holds more registers, so fewer blocks of the neighbouring kernels of a decode step
            // fit beside it: it must win alone by 5% (bench/gpu/NOTES.md, session 3: a win of a few percent alone
            // on the 1B dense shape came with a slower 1B decode).
            if (us < (unroll == 8 ? 0.95f : 1.f) * best_us) {
              best = {{"max_m", M}, {"kind", "gemv"}, {"unroll", unroll}, {"us", us}};
              best_us = gemv_us = us;
            }
          }
        }
        for (auto& algo : runner.heuristics(a, 8)) {
          cuda::GemmTactic t;
          t.kind = cuda::GemmTactic::Cublaslt;
          t.algo = algo;
          t.has_algo = true;
          float us;
          try {
            us = time_tactic(M, t);
          } catch (const Error&) {
            cudaGetLastError();
            continue;  // an algorithm that refuses this shape
          }
          // In a decode step the GEMV fuses with its neighbours (the norm prologue, the residual epilogue, the
          // SiLU gate) and launches early (PDL), which a cuBLASLt GEMM does not: cuBLASLt must win alone by 10%.
          // H100, session 5 kernel timeline: the 8B down projection had taken cuBLASLt's split-K (42.3 us + a
          // 2.1 us reduce) on a 1-2 us lead alone, and cost a separate norm kernel (6 us) in every layer.
          if (us < best_us && us < kGemvMargin * gemv_us) {
            best_us = us;
            best = {{"max_m", M}, {"kind", "cublaslt"}, {"algo", cuda::GemmRunner::algo_to_hex(algo)}, {"us", us}};
          }
        }
        if (best.is_null()) fail("autotune: no GEMM algorithm runs {} ({} x {} x {})", g.what, M, g.N, g.K);
        list.push_back(best);
      }
      gemms[key] = list;
    }
    KILN_CUDA_CHECK(cudaStreamSynchronize(s));
    plan.tactics = {{"cublaslt_version", runner.cublaslt_version()}, {"device", cuda_device_name(device)}, {"gemm", gemms}};
  }
  cudaStreamDestroy(s);
  return plan;
}

}  // namespace kiln
