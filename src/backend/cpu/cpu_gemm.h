// The cpu backend's one matrix product, shared by its float and quantized linears and its MoE.
#pragma once
#include <cstdint>

namespace kiln {

// out [M, N] = x [M, K] @ w [N, K]^T, with every row's result independent of M (batch-invariant), so a seeded
// request samples the same tokens alone and in a busy batch.
void row_invariant_gemm(const float* x, int64_t M, const float* w, int64_t N, int64_t K, float* out);

}  // namespace kiln
