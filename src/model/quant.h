// Quantization of a checkpoint or engine: the `quantization` block of config.json (and of engine.json's model).
// quant_algo says how the linear layers' weights (and activations) are quantized, kv_cache_quant_algo the KV cache;
// the names are TensorRT-LLM's. Every linear layer of the model except the MoE router is quantized (embeddings and
// norms never are) unless exclude_modules names it.
//
// | quant_algo                    | weight data     | weight_scale              | also                   | activations      |
// |-------------------------------|-----------------|---------------------------|------------------------|------------------|
// | FP8                           | F8_E4M3 [N, K]  | per tensor [1]            | input_scale [1]        | fp8, static      |
// | FP8_PER_CHANNEL_PER_TOKEN     | F8_E4M3 [N, K]  | per channel [N]           |                        | fp8, per token   |
// | W8A8_SQ_PER_CHANNEL_PER_TOKEN | I8 [N, K]       | per channel [N]           |                        | int8, per token  |
// | W8A16                         | I8 [N, K]       | per channel, or per group |                        | not quantized    |
// | W4A16                         | I4X2 [N, K / 2] | per channel, or per group |                        | not quantized    |
// | W4A16_AWQ                     | I4X2 [N, K / 2] | per group [N, K / G]      | pre_quant_scale [K]    | not quantized    |
// | W4A16_GPTQ                    | I4X2 [N, K / 2] | per group [N, K / G]      | weight_zero [N, K / G] | not quantized    |
//
// Per group: G = group_size consecutive input channels share a scale (required for AWQ and GPTQ, optional for the
// weight-only W8A16/W4A16, refused for the others). SmoothQuant's smoothing factors are folded into the preceding
// ops by the quantizer (norm weights; v rows for dense; up rows for down), so W8A8 has no pre_quant_scale.
// The tensor names, dtypes and the dequantization formula are in src/model/weights.h.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace kiln {

enum class QuantAlgo {
  None,
  FP8,
  FP8_PER_CHANNEL_PER_TOKEN,
  W8A8_SQ_PER_CHANNEL_PER_TOKEN,
  W8A16,
  W4A16,
  W4A16_AWQ,
  W4A16_GPTQ,
};
enum class KvCacheQuantAlgo { None, FP8, INT8 };

struct QuantConfig {
  QuantAlgo quant_algo = QuantAlgo::None;
  KvCacheQuantAlgo kv_cache_quant_algo = KvCacheQuantAlgo::None;
  int64_t group_size = 0;  // 0: none (JSON null)
  // Linear layers left in float: kiln module names ("lm_head", "layers.3.mlp.down"); '*' matches any run of
  // characters ("layers.*.attention.qkv").
  std::vector<std::string> exclude_modules;

  bool any() const { return quant_algo != QuantAlgo::None || kv_cache_quant_algo != KvCacheQuantAlgo::None; }
  bool excludes(const std::string& module) const;
  // The combination rules of the table above (group_size); errors name `source` and the field.
  void validate(const std::string& source) const;
  bool operator==(const QuantConfig&) const = default;
};

// exclude_modules matching: '*' matches any run of characters (dots included), everything else itself.
bool module_pattern_matches(std::string_view pattern, std::string_view module);

std::string_view quant_algo_name(QuantAlgo a);                // "FP8", ...; "null" for None
std::string_view kv_cache_quant_algo_name(KvCacheQuantAlgo a);  // "FP8", "INT8"; "null" for None

// {"quant_algo": "FP8" | null, "kv_cache_quant_algo": "FP8" | "INT8" | null, "group_size": 128 | null,
//  "exclude_modules": [...]}
nlohmann::json quant_config_to_json(const QuantConfig& q);
// Reads and validates a `quantization` block. An unknown algorithm name or field is refused naming the field and
// the value ("quantization.quant_algo 'FP4': unknown ...").
QuantConfig quant_config_from_json(const nlohmann::json& j, const std::string& source);

enum class QuantGranularity { None, PerTensor, PerChannel, PerGroup };  // None: a float (not quantized) weight
enum class WeightPacking { None, Int4x2 };  // Int4x2: DType::I4X2, two int4 per byte along the input dimension
enum class ActQuant { None, PerTensorStatic, PerTokenDynamic };

// How one linear layer's weight is stored and what its GEMM does with the activations.
struct QuantScheme {
  QuantGranularity granularity = QuantGranularity::None;
  int64_t group_size = 0;  // PerGroup: input channels per scale
  WeightPacking packing = WeightPacking::None;
  DType weight_dtype = DType::F32;  // quantized: F8_E4M3, I8 or I4X2
  ActQuant activations = ActQuant::None;
  DType act_dtype = DType::F32;  // quantized activations: F8_E4M3 or I8
  bool zero_point = false;       // <m>.weight_zero
  bool input_scale = false;      // <m>.input_scale
  bool pre_quant_scale = false;  // <m>.pre_quant_scale

  bool quantized() const { return granularity != QuantGranularity::None; }
  // The stored data's shape for a logical weight [lead..., N, K]: K / 2 bytes per row when packed.
  std::vector<int64_t> data_shape(std::vector<int64_t> lead, int64_t N, int64_t K) const;
  // weight_scale's (and weight_zero's) shape: [lead..., 1] | [lead..., N] | [lead..., N, K / group_size].
  std::vector<int64_t> scale_shape(std::vector<int64_t> lead, int64_t N, int64_t K) const;
};

// The scheme of every linear layer quant_algo quantizes (not excluded); granularity None for QuantAlgo::None.
QuantScheme linear_quant_scheme(const QuantConfig& q);

// The KV cache's element type: the compute dtype, or F8_E4M3 (FP8) / I8 (INT8) with per-layer scales.
DType kv_cache_dtype(const QuantConfig& q, DType compute);

}  // namespace kiln
