// ModelConfig: the one description of a decoder that the forward pass is configured by.
// Architectures differ only in these fields; there is no per-architecture forward pass.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/quant.h"
#include "parallel/mapping.h"

namespace kiln {

enum class NormType { RMSNorm, LayerNorm };
enum class Activation { SiluGated, GeluTanh };           // SiluGated: down(silu(gate) * up); GeluTanh: down(gelu(fc))
enum class PositionType { Rope, Learned };
enum class RopeScaling { None, Linear, Llama3 };

struct RopeConfig {
  double theta = 10000.0;
  RopeScaling scaling = RopeScaling::None;
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  int64_t original_max_position = 8192;  // llama3
  // transformers keeps inv_freq as a buffer in the model's dtype, so a bf16 checkpoint run by transformers
  // rotates with bf16-rounded frequencies. kiln rounds them the same way (the HF checkpoint's dtype).
  DType freq_dtype = DType::F32;
};

struct ModelConfig {
  std::string architecture;  // the HF class it came from, e.g. "LlamaForCausalLM"
  DType dtype = DType::F32;  // dtype of the stored weights
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;
  NormType norm = NormType::RMSNorm;
  double norm_eps = 1e-6;
  Activation activation = Activation::SiluGated;
  PositionType position = PositionType::Rope;
  RopeConfig rope;
  bool tie_embeddings = false;
  bool qkv_bias = false;       // biases on the fused qkv projection
  bool dense_bias = false;     // bias on the attention output projection
  bool mlp_bias = false;       // biases on the MLP projections
  bool norm_bias = false;      // LayerNorm bias
  bool qk_norm = false;        // per-head RMSNorm on q and k before RoPE (Qwen3)
  int64_t sliding_window = 0;  // 0: full attention
  int64_t num_experts = 0;     // 0: dense MLP
  int64_t experts_top_k = 0;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  Mapping mapping;    // config.json `mapping`: tp_size, pp_size (rank: set by whoever loads one rank)
  QuantConfig quant;  // config.json `quantization`

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
  int64_t qkv_size() const { return q_size() + 2 * kv_size(); }
  // Throws naming the bad field: sizes, the mapping, and the quantization against the model's linear layers
  // (check_quantization, src/model/weights.h).
  void validate() const;
};

nlohmann::json config_to_json(const ModelConfig& c);
ModelConfig config_from_json(const nlohmann::json& j, const std::string& source);  // kiln's own format

// Parses a Hugging Face config.json (transformers 4 and 5 styles). Throws naming the file and field.
ModelConfig config_from_hf(const nlohmann::json& j, const std::string& source);

}  // namespace kiln
