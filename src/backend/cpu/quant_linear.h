// The cpu backend's quantized linear: the reference every GPU GEMM of a quant_algo is tested against.
//
// One matrix [N, K] (an expert's slice of an MoE weight is one too) is computed as
//   weight-only (W8A16, W4A16, W4A16_AWQ, W4A16_GPTQ): W[n, k] = (q[n, k] - zero) * scale in fp32, then
//       out = (x * pre_quant_scale) @ W^T in fp32 (x * pre_quant_scale: one fp32 product per element);
//   W8A8 (FP8, FP8_PER_CHANNEL_PER_TOKEN, W8A8_SQ_PER_CHANNEL_PER_TOKEN): each activation row t is quantized with
//       scale a_t (FP8: the static input_scale; per token: absmax(x_t) / qmax, src/core/quant_math.h) and
//       acc[t, n] = sum_k xq[t, k] * q[n, k] is formed from the quantized values, then
//       out[t, n] = (acc[t, n] * a_t) * w_n (w_n: weight_scale[0] per tensor, weight_scale[n] per channel).
//       int8 products are summed exactly (fp32 sums of integers below 2^24 over chunks of at most 1024 inputs,
//       the chunks summed in double), as an int32 accumulator does; fp8 products are exact in fp32 and summed in
//       fp32, as the tensor cores do (in another order).
// Bias is the caller's (added after).
#pragma once
#include <cstdint>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace kiln {

// One quantized matrix [N, K] and its parameters, as the cpu backend holds them (data in its stored dtype).
struct CpuQuantMatrix {
  QuantScheme scheme;
  const void* data = nullptr;              // F8_E4M3 | I8 [N, K] or I4X2 [N, K / 2]
  const float* scale = nullptr;            // [1] | [N] | [N, K / G]
  const int8_t* zero = nullptr;            // scale's shape, or null
  const float* input_scale = nullptr;      // [1] or null
  const float* pre_quant_scale = nullptr;  // [K] or null
  int64_t N = 0, K = 0;
};

// Matrix `index` of a weight with a leading dimension (MoE experts: [E, ...]); index 0 of a plain one. Checks the
// tensors' dtypes and shapes against the scheme, naming `what`.
CpuQuantMatrix cpu_quant_matrix(const QuantScheme& s, const Tensor& weight, const Tensor& weight_scale,
                                const Tensor& weight_zero, const Tensor& input_scale, const Tensor& pre_quant_scale,
                                int64_t index, const char* what);

// out [T, N] = x [T, K] through the quantized matrix (see above), without bias.
void cpu_quant_linear(ThreadPool& pool, const float* x, int64_t T, const CpuQuantMatrix& w, float* out);

}  // namespace kiln
