// FP8 Hugging Face checkpoints (compressed-tensors "float-quantized", as llm-compressor writes them, and NVIDIA
// ModelOpt's quant_algo FP8), read by kiln convert. Per linear layer P of logical weight [N, K]:
//   P.weight        F8_E4M3 [N, K]
//   P.weight_scale  F32 / BF16 / F16, [] or [1] (per tensor) or [N, 1] / [N] (per channel): W = f8(q) * scale
//   P.input_scale   the same dtypes, [] or [1]: the static activation scale (absent for dynamic activations)
// and per layer the KV-cache scales self_attn.k_scale / self_attn.v_scale ([] or [1]; ModelOpt also writes them
// as self_attn.k_proj.k_scale / self_attn.v_proj.v_scale).
// kiln's formats: per-tensor weights with static activations become FP8 (the layers kiln fuses, q/k/v and
// gate/up, share one weight scale, their maximum, each part requantized to it (round to nearest even, saturated),
// and one input_scale, the maximum); per-channel weights or dynamic activations become FP8_PER_CHANNEL_PER_TOKEN
// (per-tensor scales repeated per channel: the same weights exactly). Per-channel weights with static activations
// have no kiln scheme and are refused. k/v scales become layers.{i}.attention.kv_cache_scale (KV cache FP8).
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace kiln {

struct HfFp8 {
  bool dynamic_activations = false;
  bool kv_cache = false;  // the checkpoint has k/v scales
  std::string name;       // "compressed-tensors FP8", "ModelOpt FP8"
};

// Whether qc describes an FP8 checkpoint kiln reads (*out filled); false for other methods. Refuses an FP8 one kiln
// cannot read (another bit width or type, block-wise scales), naming the field.
bool hf_fp8_from_config(const nlohmann::json& qc, const std::string& src, HfFp8* out);

struct Fp8Linear {
  int64_t N = 0, K = 0;
  const uint8_t* q = nullptr;  // [N, K] fp8 codes (in the mapped file)
  std::vector<float> scale;    // [1] or [N]
  float input_scale = 0.0f;    // 0: none (dynamic)
};
Fp8Linear read_fp8_linear(const SafetensorsSet& src, const std::string& dir, const std::string& prefix,
                          const HfFp8& f, int64_t N, int64_t K);

// Stacks parts along N in kiln's layout: per_channel (FP8_PER_CHANNEL_PER_TOKEN) or per tensor (FP8).
struct KilnFp8 {
  std::vector<uint8_t> data;
  std::vector<float> scale;  // [1] or [N]
  float input_scale = 0.0f;
};
KilnFp8 to_kiln_fp8(const std::vector<Fp8Linear>& parts, bool per_channel);

// A scalar ([] or [1]) float tensor's value.
float read_scalar(const SafetensorsSet& src, const std::string& dir, const std::string& name);

}  // namespace kiln
