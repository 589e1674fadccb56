// GEMMs of the cuda backend: out[M, N] = x[M, K] @ w[N, K]^T (+ bias[N]), w as stored by the engine.
// cuBLASLt sees this column-major: D[N, M] = op(A = w, col-major [K, N], ld K)^T x (B = x, col-major [K, M], ld K),
// so TRANSA = T, TRANSB = N, m = N, n = M, k = K. Few-row products can instead run kiln's GEMV (kernels.h).
// The tactic for a shape and row count comes from engine.json (measured at build time by the planner); without
// one, GEMV for up to 4 rows and cuBLASLt's first heuristic otherwise (cached per shape and M).
// Batch-invariant mode (set_invariant): one cuBLASLt algorithm per shape for every M, without split-K, never the
// GEMV, so that a row's result does not depend on the other rows: the engine's (its last bucket), else one chosen
// per shape at first use from the heuristics at kInvariantRefRows rows.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cuda/kernels.h"
#include "core/dtype.h"

namespace kiln::cuda {

struct GemmArgs {
  const void* x = nullptr;     // dt [M, K]
  const void* w = nullptr;     // dt [N, K]
  const void* bias = nullptr;  // dt [N] or null
  void* out = nullptr;         // out_dt [M, N]
  int64_t M = 0, N = 0, K = 0;
  DType dt = DType::BF16, out_dt = DType::BF16;
};

// The decode GEMV's L2 budgets (GemvKParams::l2_prefetch_bytes), as CudaBackend sets them (bench/gpu/NOTES.md has
// the sweeps). The GEMV after a decode attention kernel prefetches its own weights, then the next GEMV's
// (l2_next). 1B shape, H100: 836 tok/s without the next weights; 851 / 859 / 863 / 865 tok/s at 40 / 48 / 56 /
// 64 MB, 861-862 at 80-128 MB; the 8B shape is flat from 48 MB on (session 4). The same budget before every GEMV
// was slower (session 2).
constexpr int64_t kGemvL2AfterAttention = int64_t(64) << 20;
// The other GEMVs without a norm prologue (the down projection, the lm_head): their own first weights, prefetched
// during the previous kernel's tail. H100, session 5: +0.2% at 1B and 8B decode with 4 MB; 8 MB less; the same for
// the GEMVs with a norm prologue (4 / 8 / 16 MB) was flat to -1%, so they prefetch nothing.
constexpr int64_t kGemvL2Rest = int64_t(4) << 20;

// The GEMV kernel's parameters for a GEMM of few rows (GemmTactic::Gemv), before any fusion.
GemvKParams gemv_params(const GemmArgs& a, int unroll);

// The tactics key of a GEMM shape: "n{N}_k{K}_{dtype}_{out dtype}[_bias]".
std::string gemm_key(int64_t N, int64_t K, DType dt, DType out_dt, bool bias);

struct GemmTactic {
  enum Kind { Gemv, Cublaslt } kind = Cublaslt;
  int gemv_unroll = 4;    // Gemv: 16-byte loads in flight per lane (4 or 8)
  cublasLtMatmulAlgo_t algo{};
  bool has_algo = false;  // Cublaslt without an algo: the first heuristic
};

class GemmRunner {
 public:
  GemmRunner(cudaStream_t stream, size_t workspace_bytes = size_t(32) << 20);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  // engine.json "tactics" (may be empty). Throws on a malformed entry.
  void set_tactics(const nlohmann::json& tactics);
  void set_invariant(bool on);
  void run(const GemmArgs& a);                           // the engine's tactic (or the default)
  void run(const GemmArgs& a, const GemmTactic& t);      // a given tactic
  GemmTactic tactic(const GemmArgs& a);                  // what run(a) uses (checked, cached per shape and M)
  // Up to `max` algorithms cuBLASLt's heuristics offer for this shape (workspace within ours).
  std::vector<cublasLtMatmulAlgo_t> heuristics(const GemmArgs& a, int max);
  size_t cublaslt_version() const;
  // Whether cuBLASLt accepts `algo` for this shape (cublasLtMatmulAlgoCheck, workspace within ours).
  bool accepts(const GemmArgs& a, const cublasLtMatmulAlgo_t& algo);
  // The algorithm with one K split and no reduction scheme (a row's sum in one pass over K).
  static cublasLtMatmulAlgo_t without_split_k(cublasLtMatmulAlgo_t algo);
  static constexpr int64_t kInvariantRefRows = 256;

  static std::string algo_to_hex(const cublasLtMatmulAlgo_t& a);
  static cublasLtMatmulAlgo_t algo_from_hex(const std::string& s);

 private:
  struct Descs {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  };
  struct Bucket {
    int64_t max_m;
    GemmTactic tactic;
  };
  Descs& descs(const GemmArgs& a);
  GemmTactic invariant_tactic(const GemmArgs& a, const std::string& key);

  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int, int, bool>, Descs> descs_;  // (M, N, K, dt, out_dt, bias)
  std::map<std::string, std::vector<Bucket>> tactics_;                           // by gemm_key, max_m ascending
  std::map<std::tuple<std::string, int64_t>, GemmTactic> chosen_;                // (key, M) -> checked tactic
  bool invariant_ = false;
  std::map<std::string, cublasLtMatmulAlgo_t> invariant_algo_;  // by gemm_key: the one algorithm of a shape
};

}  // namespace kiln::cuda
