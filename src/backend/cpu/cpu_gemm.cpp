#include "backend/cpu/cpu_gemm.h"

#include <cblas.h>

#include <cstring>
#include <vector>

namespace kiln {

namespace {

// OpenBLAS picks a kernel by problem size: its general path computes each element with the same K-ordered
// accumulation whatever M is, but below a size it switches to "small matrix" kernels that round differently
// (on SkylakeX: when N * M <= 1200). So rows go through sgemm only in calls of a multiple of kGemmRows rows,
// the tail zero-padded, which keeps wide layers (N >= kWideN) on the general path for every M; narrow ones
// (an MoE router) always run in calls of exactly kGemmRows rows, whichever kernel that picks.
// tests/backend/cpu_gemm_invariance_test.cpp checks this against the installed OpenBLAS.
constexpr int64_t kGemmRows = 16, kWideN = 128;

void sgemm_nt(const float* x, int64_t M, const float* w, int64_t N, int64_t K, float* out) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f, x, int(K), w, int(K), 0.0f, out,
              int(N));
}

}  // namespace

void row_invariant_gemm(const float* x, int64_t M, const float* w, int64_t N, int64_t K, float* out) {
  const int64_t full = M / kGemmRows * kGemmRows;
  if (N >= kWideN) {
    if (full > 0) sgemm_nt(x, full, w, N, K, out);
  } else {
    for (int64_t r = 0; r < full; r += kGemmRows) sgemm_nt(x + r * K, kGemmRows, w, N, K, out + r * N);
  }
  if (full == M) return;
  const int64_t rest = M - full;
  std::vector<float> xs(size_t(kGemmRows * K), 0.0f), ys(size_t(kGemmRows * N));  // [16, K], [16, N]
  std::memcpy(xs.data(), x + full * K, size_t(rest * K) * 4);
  sgemm_nt(xs.data(), kGemmRows, w, N, K, ys.data());
  std::memcpy(out + full * N, ys.data(), size_t(rest * N) * 4);
}

}  // namespace kiln
