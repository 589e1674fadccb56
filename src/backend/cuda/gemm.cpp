#include "backend/cuda/gemm.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace kiln::cuda {

namespace {

void lt_check(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) fail("cuBLASLt: {} failed ({})", what, cublasLtGetStatusString(st));
}
void rt_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("CUDA: {} failed ({})", what, cudaGetErrorString(e));
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F32: return CUDA_R_32F;
    default: fail("GEMM: unsupported dtype {}", dtype_name(t));
  }
}

}  // namespace

std::string gemm_key(int64_t N, int64_t K, DType dt, DType out_dt, bool bias) {
  return fmt::format("n{}_k{}_{}_{}{}", N, K, dtype_name(dt), dtype_name(out_dt), bias ? "_bias" : "");
}

GemmRunner::GemmRunner(cudaStream_t stream, size_t workspace_bytes) : stream_(stream), workspace_bytes_(workspace_bytes) {
  lt_check(cublasLtCreate(&handle_), "cublasLtCreate");
  rt_check(cudaMalloc(&workspace_, workspace_bytes_), "cudaMalloc (GEMM workspace)");
}

GemmRunner::~GemmRunner() {
  for (auto& [k, d] : descs_) {
    cublasLtMatrixLayoutDestroy(d.a);
    cublasLtMatrixLayoutDestroy(d.b);
    cublasLtMatrixLayoutDestroy(d.d);
    cublasLtMatmulDescDestroy(d.op);
  }
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

size_t GemmRunner::cublaslt_version() const { return cublasLtGetVersion(); }

std::string GemmRunner::algo_to_hex(const cublasLtMatmulAlgo_t& a) {
  static const char* digits = "0123456789abcdef";
  const auto* b = reinterpret_cast<const uint8_t*>(&a);
  std::string s;
  for (size_t i = 0; i < sizeof(a); ++i) {
    s += digits[b[i] >> 4];
    s += digits[b[i] & 15];
  }
  return s;
}

cublasLtMatmulAlgo_t GemmRunner::algo_from_hex(const std::string& s) {
  cublasLtMatmulAlgo_t a{};
  if (s.size() != 2 * sizeof(a)) fail("engine.json tactics: algo '{}' is not {} hex digits", s, 2 * sizeof(a));
  auto nib = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    fail("engine.json tactics: algo '{}' is not hex", s);
  };
  auto* b = reinterpret_cast<uint8_t*>(&a);
  for (size_t i = 0; i < sizeof(a); ++i) b[i] = uint8_t(nib(s[2 * i]) << 4 | nib(s[2 * i + 1]));
  return a;
}

void GemmRunner::set_tactics(const nlohmann::json& t) {
  tactics_.clear();
  chosen_.clear();
  invariant_algo_.clear();
  if (!t.is_object() || !t.contains("gemm")) return;
  const bool same_lib = t.value("cublaslt_version", size_t(0)) == cublaslt_version();
  for (auto& [key, list] : t["gemm"].items()) {
    std::vector<Bucket> v;
    for (auto& e : list) {
      Bucket b;
      b.max_m = e.at("max_m").get<int64_t>();
      const std::string kind = e.at("kind").get<std::string>();
      if (kind == "gemv") {
        b.tactic.kind = GemmTactic::Gemv;
        b.tactic.gemv_unroll = e.value("unroll", 4);
        if (b.tactic.gemv_unroll != 4 && b.tactic.gemv_unroll != 8)
          fail("engine.json tactics: GEMV unroll {} for {} (expected 4 or 8)", b.tactic.gemv_unroll, key);
      } else if (kind == "cublaslt") {
        b.tactic.kind = GemmTactic::Cublaslt;
        // An algorithm from another cuBLASLt version is not trusted: that bucket falls back to the heuristic.
        if (same_lib && e.contains("algo")) {
          b.tactic.algo = algo_from_hex(e["algo"].get<std::string>());
          b.tactic.has_algo = true;
        }
      } else {
        fail("engine.json tactics: unknown GEMM kind '{}' for {}", kind, key);
      }
      v.push_back(b);
    }
    std::sort(v.begin(), v.end(), [](const Bucket& a, const Bucket& b) { return a.max_m < b.max_m; });
    tactics_[key] = std::move(v);
  }
}

// cuBLASLt's bias epilogue wants the bias in D's type: with F32 output the bias is a separate kernel (run()).
static bool fused_bias(const GemmArgs& a) { return a.bias && a.out_dt == a.dt; }

GemmRunner::Descs& GemmRunner::descs(const GemmArgs& a) {
  auto k = std::make_tuple(a.M, a.N, a.K, int(a.dt), int(a.out_dt), fused_bias(a));
  auto it = descs_.find(k);
  if (it != descs_.end()) return it->second;
  Descs d;
  lt_check(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul desc");
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  lt_check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "TRANSA");
  lt_check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "TRANSB");
  if (fused_bias(a)) {
    const cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
    lt_check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep)), "epilogue");
  }
  lt_check(cublasLtMatrixLayoutCreate(&d.a, cuda_type(a.dt), uint64_t(a.K), uint64_t(a.N), a.K), "layout A");
  lt_check(cublasLtMatrixLayoutCreate(&d.b, cuda_type(a.dt), uint64_t(a.K), uint64_t(a.M), a.K), "layout B");
  lt_check(cublasLtMatrixLayoutCreate(&d.d, cuda_type(a.out_dt), uint64_t(a.N), uint64_t(a.M), a.N), "layout D");
  return descs_.emplace(k, d).first->second;
}

std::vector<cublasLtMatmulAlgo_t> GemmRunner::heuristics(const GemmArgs& a, int max) {
  Descs& d = descs(a);
  cublasLtMatmulPreference_t pref;
  lt_check(cublasLtMatmulPreferenceCreate(&pref), "preference");
  lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
                                                sizeof(workspace_bytes_)),
           "preference workspace");
  std::vector<cublasLtMatmulHeuristicResult_t> res(static_cast<size_t>(max));
  int n = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, d.op, d.a, d.b, d.d, d.d, pref, max, res.data(), &n);
  cublasLtMatmulPreferenceDestroy(pref);
  std::vector<cublasLtMatmulAlgo_t> out;
  if (st != CUBLAS_STATUS_SUCCESS) return out;
  for (int i = 0; i < n; ++i)
    if (res[i].state == CUBLAS_STATUS_SUCCESS) out.push_back(res[i].algo);
  return out;
}

void GemmRunner::set_invariant(bool on) {
  invariant_ = on;
  chosen_.clear();
  invariant_algo_.clear();
}

bool GemmRunner::accepts(const GemmArgs& a, const cublasLtMatmulAlgo_t& algo) {
  Descs& d = descs(a);
  cublasLtMatmulHeuristicResult_t r{};
  return cublasLtMatmulAlgoCheck(handle_, d.op, d.a, d.b, d.d, d.d, &algo, &r) == CUBLAS_STATUS_SUCCESS &&
         r.workspaceSize <= workspace_bytes_;
}

cublasLtMatmulAlgo_t GemmRunner::without_split_k(cublasLtMatmulAlgo_t algo) {
  const int32_t one = 1;
  const uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
  lt_check(cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof(one)), "split-K");
  lt_check(cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none, sizeof(none)),
           "reduction scheme");
  return algo;
}

// Batch-invariant mode: the one algorithm of this shape, whatever a.M is.
GemmTactic GemmRunner::invariant_tactic(const GemmArgs& a, const std::string& key) {
  auto it = invariant_algo_.find(key);
  if (it == invariant_algo_.end()) {
    std::optional<cublasLtMatmulAlgo_t> algo;
    auto tt = tactics_.find(key);
    if (tt != tactics_.end() && !tt->second.empty() && tt->second.back().tactic.kind == GemmTactic::Cublaslt &&
        tt->second.back().tactic.has_algo) {
      algo = tt->second.back().tactic.algo;  // the planner stores one bucket, checked row-invariant
    } else {
      GemmArgs ref = a;  // a choice that depends on the shape only
      ref.M = kInvariantRefRows;
      for (auto& h : heuristics(ref, 8)) {
        const cublasLtMatmulAlgo_t c = without_split_k(h);
        if (accepts(ref, c)) {
          algo = c;
          break;
        }
      }
      if (!algo) fail("batch-invariant GEMM {}: cuBLASLt offers no algorithm without split-K", key);
    }
    it = invariant_algo_.emplace(key, *algo).first;
  }
  if (!accepts(a, it->second))
    fail("batch-invariant GEMM {}: its algorithm does not run {} rows (rebuild the engine with this cuBLASLt)", key,
         a.M);
  GemmTactic t;
  t.algo = it->second;
  t.has_algo = true;
  return t;
}

GemmTactic GemmRunner::tactic(const GemmArgs& a) {
  const std::string key = gemm_key(a.N, a.K, a.dt, a.out_dt, a.bias != nullptr);
  auto ck = std::make_tuple(key, a.M);
  auto it = chosen_.find(ck);
  if (it != chosen_.end()) return it->second;
  if (invariant_) return chosen_[ck] = invariant_tactic(a, key);
  GemmTactic t;
  auto tt = tactics_.find(key);
  if (tt != tactics_.end() && !tt->second.empty()) {
    const Bucket* b = &tt->second.back();
    for (auto& x : tt->second)
      if (x.max_m >= a.M) {
        b = &x;
        break;
      }
    t = b->tactic;
  } else {
    t.kind = a.M <= 4 ? GemmTactic::Gemv : GemmTactic::Cublaslt;
  }
  if (t.kind == GemmTactic::Gemv && !GemvKParams::supports(a.M, a.K)) t = GemmTactic{};
  if (t.kind == GemmTactic::Cublaslt && t.has_algo && !accepts(a, t.algo)) t.has_algo = false;
  if (t.kind == GemmTactic::Cublaslt && !t.has_algo) {
    auto h = heuristics(a, 1);
    if (h.empty()) fail("cuBLASLt has no algorithm for GEMM {} with {} rows", key, a.M);
    t.algo = h[0];
    t.has_algo = true;
  }
  chosen_[ck] = t;
  return t;
}

GemvKParams gemv_params(const GemmArgs& a, int unroll) {
  GemvKParams g;
  g.x = a.x;
  g.w = a.w;
  g.bias = a.bias;
  g.out = a.out;
  g.T = a.M;
  g.N = a.N;
  g.K = a.K;
  g.dt = a.dt;
  g.out_dt = a.out_dt;
  g.unroll = unroll;
  return g;
}

void GemmRunner::run(const GemmArgs& a) { run(a, tactic(a)); }

void GemmRunner::run(const GemmArgs& a, const GemmTactic& t) {
  if (a.M == 0) return;
  if (t.kind == GemmTactic::Gemv) {
    invoke(gemv_params(a, t.gemv_unroll), stream_);
    return;
  }
  Descs& d = descs(a);
  if (fused_bias(a))
    lt_check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &a.bias, sizeof(a.bias)),
             "bias pointer");
  const float alpha = 1.0f, beta = 0.0f;
  const cublasLtMatmulAlgo_t* algo = t.has_algo ? &t.algo : nullptr;
  GemmTactic local;
  if (!algo) {
    auto h = heuristics(a, 1);
    if (h.empty()) fail("cuBLASLt has no algorithm for this GEMM ({} x {} x {})", a.M, a.N, a.K);
    local.algo = h[0];
    algo = &local.algo;
  }
  lt_check(cublasLtMatmul(handle_, d.op, &alpha, a.w, d.a, a.x, d.b, &beta, a.out, d.d, a.out, d.d, algo, workspace_,
                          workspace_bytes_, stream_),
           "cublasLtMatmul");
  if (a.bias && !fused_bias(a)) {
    BiasKParams b;
    b.out = a.out;
    b.bias = a.bias;
    b.T = a.M;
    b.N = a.N;
    b.dt = a.dt;
    b.out_dt = a.out_dt;
    invoke(b, stream_);
  }
}

}  // namespace kiln::cuda
