// kiln's one tensor naming scheme, shared by checkpoints and engines, and the list of tensors a config needs.
//
//   embed.weight                       [V, H]
//   pos_embed.weight                   [P, H]          learned positions (GPT-2)
//   layers.{i}.input_norm.{weight,bias}                [H]
//   layers.{i}.attention.qkv.{weight,bias}             [(nh + 2 nkv) hd, H]   q rows, then k, then v
//   layers.{i}.attention.{q_norm,k_norm}.weight        [hd]            (Qwen3)
//   layers.{i}.attention.dense.{weight,bias}           [H, nh hd]
//   layers.{i}.post_norm.{weight,bias}                 [H]
//   layers.{i}.mlp.gate_up.{weight,bias}               [2 I, H]        gate rows, then up (SiLU-gated)
//   layers.{i}.mlp.fc.{weight,bias}                    [I, H]          (GELU)
//   layers.{i}.mlp.down.{weight,bias}                  [H, I]
//   layers.{i}.moe.router.weight                       [E, H]
//   layers.{i}.moe.gate_up.weight                      [E, 2 I, H]
//   layers.{i}.moe.down.weight                         [E, H, I]
//   final_norm.{weight,bias}                           [H]
//   lm_head.weight                                     [V, H]          absent when embeddings are tied
//
// Quantized checkpoints (ModelConfig::quant, src/model/quant.h). The linear layers (module names: the tensor
// names above without ".weight": attention.qkv, attention.dense, mlp.gate_up, mlp.fc, mlp.down, moe.gate_up,
// moe.down, lm_head; never the router, embeddings or norms) that quant_algo quantizes and exclude_modules does not
// name hold, for a logical weight [lead..., N, K] (lead: [E] for the MoE experts, else nothing):
//   <m>.weight            quantized data: F8_E4M3 or I8 [lead..., N, K], or I4X2 [lead..., N, K / 2]
//   <m>.weight_scale      F32 [lead..., 1] per tensor | [lead..., N] per channel | [lead..., N, K / G] per group
//   <m>.weight_zero       I8, weight_scale's shape (W4A16_GPTQ)
//   <m>.input_scale       F32 [lead..., 1]: static activation scale (FP8)
//   <m>.pre_quant_scale   F32 [lead..., K] (W4A16_AWQ)
//   (<m>.bias stays a float tensor.)
// The layer computes out = (x * pre_quant_scale) @ W^T + bias with W[n, k] = (q[n, k] - zero) * scale (zero and
// scale those of (n, k): the tensor's, channel n's, or group (n, k / G)'s; zero 0 without weight_zero). I4X2 packs
// two signed int4 per byte along K, element 2j in the low nibble of byte j; zero points are in q's range
// ([-8, 7] for int4). Quantized activations: x_q = x / input_scale (FP8, saturated to +-448), or per token
// dynamically. A quantized KV cache (kv_cache_quant_algo FP8 or INT8) adds per layer
//   layers.{i}.attention.kv_cache_scale   F32 [2]: the dequantization scale of k, then of v
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace kiln {

struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
  // false: a float tensor, any of F32/F16/BF16 in a checkpoint, converted to the target's weight dtype by the build.
  // true: quantized data or a quantization parameter, stored exactly as `dtype` and never converted.
  bool quant = false;
  DType dtype = DType::F32;  // when quant
};

// Every tensor a checkpoint or engine for this config must hold, with its shape.
std::vector<WeightSpec> expected_weights(const ModelConfig& c);

// A linear layer whose weight quant_algo may quantize: <module>.weight is [lead..., N, K].
struct LinearSpec {
  std::string module;         // "layers.0.attention.qkv", "lm_head"
  std::vector<int64_t> lead;  // [E] for MoE experts, else empty
  int64_t N = 0, K = 0;
  QuantScheme scheme;         // granularity None when not quantized (QuantAlgo::None or excluded)
};
std::vector<LinearSpec> linear_layers(const ModelConfig& c);

// The quantization's checks against the model's linear layers: group_size divides every quantized layer's K,
// int4 layers have an even K, and each exclude_modules entry names a module of this model. Throws naming the
// field and the layer.
void check_quantization(const ModelConfig& c);
std::string layer_name(int64_t layer, const std::string& suffix);  // "layers.{i}.{suffix}"

}  // namespace kiln
