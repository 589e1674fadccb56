// Pre-quantized Hugging Face checkpoints (config.json's quantization_config), read by kiln convert into kiln's
// int4-with-zero-points format (quant_algo W4A16_GPTQ: I4X2 data, F32 weight_scale and I8 weight_zero per group of
// input channels; W[n, k] = (q - zero) * scale). Both formats store unsigned 4-bit values u in [0, 15] with an
// unsigned zero point; kiln keeps q = u - 8 and zero = z - 8 (the same difference).
//
// GPTQ (AutoGPTQ / GPTQModel, quant_method "gptq", bits 4), per linear layer P of logical weight [N, K]:
//   P.qweight  I32 [K / 8, N]   eight inputs per word along K: input 8r + j of column n in bits 4j..4j+3 of [r, n]
//   P.qzeros   I32 [G, N / 8]   eight outputs per word along N: output 8c + j in bits 4j..4j+3 of [g, c]; stored as
//                               z - 1 (checkpoint_format "gptq", AutoGPTQ's convention) or z ("gptq_v2")
//   P.scales   F16 [G, N]
//   P.g_idx    I32 [K]          the group of each input (k / group_size without act-order; any order with
//                               desc_act); absent means k / group_size
//   W[n, k] = scales[g, n] * (u[k, n] - z[g, n]) with g = g_idx[k].
// AutoAWQ GEMM (quant_method "awq", version "gemm"), per linear layer:
//   P.qweight  I32 [K, N / 8]   eight outputs per word along N, in the order [0, 2, 4, 6, 1, 3, 5, 7]: output
//                               8c + order[j] in bits 4j..4j+3 of [k, c]
//   P.qzeros   I32 [K / G, N / 8] the same packing
//   P.scales   F16 [K / G, N]
//   W[n, k] = scales[k / G, n] * (u[k, n] - z[k / G, n]).
// kiln's groups are runs of group_size consecutive inputs: with act-order, the group size kiln records is the
// largest one whose every aligned run of inputs shares one GPTQ group in every layer (1 for a fully shuffled g_idx),
// each run taking its group's scale and zero: the same weights, exactly.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace kiln {

enum class HfQuantMethod { Gptq, AwqGemm };

struct HfQuant {
  HfQuantMethod method = HfQuantMethod::Gptq;
  int64_t group_size = 0;  // the checkpoint's (-1 in GPTQ: one group over all inputs)
  bool zeros_minus_one = true;  // GPTQ v1 storage of the zero points
  std::string name;             // "GPTQ", "AutoAWQ GEMM" (for messages)
};

// Reads quantization_config; refuses what kiln cannot import (another method, bits other than 4, AWQ GEMV...).
HfQuant hf_quant_from_config(const nlohmann::json& qc, const std::string& src);

// One linear layer [N, K] decoded: u and z unsigned 4-bit values, scale per GPTQ/AWQ group.
struct Int4Linear {
  int64_t N = 0, K = 0, groups = 0;
  std::vector<uint8_t> u;       // [N, K]
  std::vector<uint8_t> z;       // [groups, N]
  std::vector<float> scale;     // [groups, N]
  std::vector<int32_t> g_idx;   // [K]
};
// Reads and checks (presence, dtype, shape, g_idx range) the tensors of layer `prefix`; errors name dir and tensor.
Int4Linear read_int4_linear(const SafetensorsSet& src, const std::string& dir, const std::string& prefix,
                            const HfQuant& q, int64_t N, int64_t K);

// The largest run length dividing K whose aligned runs each lie in one group of `l`.
int64_t int4_run_length(const Int4Linear& l);

// Rows of several layers stacked along N (q, k, v -> qkv): kiln's I4X2 data [N, K / 2], F32 weight_scale and I8
// weight_zero [N, K / run].
struct KilnInt4 {
  std::vector<uint8_t> data;
  std::vector<float> scale;
  std::vector<int8_t> zero;
};
KilnInt4 to_kiln_int4(const std::vector<Int4Linear>& parts, int64_t run);

}  // namespace kiln
