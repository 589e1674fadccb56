#include "model/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/weights.h"

using json = nlohmann::json;

namespace kiln {

namespace {

const char* norm_str(NormType n) { return n == NormType::RMSNorm ? "rmsnorm" : "layernorm"; }
const char* act_str(Activation a) { return a == Activation::SiluGated ? "silu_gated" : "gelu_tanh"; }
const char* pos_str(PositionType p) { return p == PositionType::Rope ? "rope" : "learned"; }
const char* scaling_str(RopeScaling s) {
  switch (s) {
    case RopeScaling::None: return "none";
    case RopeScaling::Linear: return "linear";
    case RopeScaling::Llama3: return "llama3";
  }
  return "none";
}

// Field access with errors naming the source file and field.
struct Reader {
  const json& j;
  const std::string& src;
  bool has(const char* k) const { return j.contains(k) && !j[k].is_null(); }
  template <typename T>
  T req(const char* k) const {
    if (!has(k)) fail("{}: missing config field '{}'", src, k);
    try {
      return j[k].get<T>();
    } catch (const json::exception&) {
      fail("{}: config field '{}' has the wrong type ({})", src, k, j[k].dump());
    }
  }
  template <typename T>
  T opt(const char* k, T def) const {
    return has(k) ? req<T>(k) : def;
  }
};

RopeConfig parse_hf_rope(const json& j, const std::string& src) {
  RopeConfig r;
  // transformers 5: rope_parameters {rope_theta, rope_type, ...}; transformers 4: rope_theta + rope_scaling.
  const json* params = nullptr;
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) params = &j["rope_parameters"];
  else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) params = &j["rope_scaling"];
  Reader top{j, src};
  r.theta = top.opt<double>("rope_theta", 10000.0);
  if (!params) return r;
  Reader p{*params, src};
  r.theta = p.opt<double>("rope_theta", r.theta);
  std::string type = p.opt<std::string>("rope_type", p.opt<std::string>("type", "default"));
  if (type == "default") {
    r.scaling = RopeScaling::None;
  } else if (type == "linear") {
    r.scaling = RopeScaling::Linear;
    r.factor = p.req<double>("factor");
  } else if (type == "llama3") {
    r.scaling = RopeScaling::Llama3;
    r.factor = p.req<double>("factor");
    r.low_freq_factor = p.req<double>("low_freq_factor");
    r.high_freq_factor = p.req<double>("high_freq_factor");
    r.original_max_position = p.req<int64_t>("original_max_position_embeddings");
  } else {
    fail("{}: unsupported rope type '{}' (supported: default, linear, llama3)", src, type);
  }
  return r;
}

std::vector<int64_t> int_or_list(const json& j) {
  std::vector<int64_t> out;
  if (j.is_number_integer()) out.push_back(j.get<int64_t>());
  else if (j.is_array())
    for (auto& v : j) if (v.is_number_integer()) out.push_back(v.get<int64_t>());
  return out;
}

}  // namespace

void ModelConfig::validate() const {
  auto pos = [&](int64_t v, const char* name) {
    if (v <= 0) fail("model config: {} must be positive (got {})", name, v);
  };
  pos(vocab_size, "vocab_size");
  pos(hidden_size, "hidden_size");
  pos(num_layers, "num_layers");
  pos(num_heads, "num_heads");
  pos(num_kv_heads, "num_kv_heads");
  pos(head_dim, "head_dim");
  pos(intermediate_size, "intermediate_size");
  pos(max_position_embeddings, "max_position_embeddings");
  // Upper bounds, checked before anything is sized from the config (a num_hidden_layers of 10^9 made convert
  // allocate gigabytes for its list of tensors): far above any released model, far below int64 overflow of the
  // shapes and byte counts computed from them.
  auto at_most = [&](int64_t v, const char* name, int64_t limit) {
    if (v > limit) fail("model config: {} {} exceeds the limit {}", name, v, limit);
  };
  at_most(vocab_size, "vocab_size", int64_t(1) << 24);
  at_most(hidden_size, "hidden_size", int64_t(1) << 18);
  at_most(num_layers, "num_layers (num_hidden_layers)", 4096);
  at_most(num_heads, "num_heads (num_attention_heads)", 4096);
  at_most(num_kv_heads, "num_kv_heads (num_key_value_heads)", 4096);
  at_most(head_dim, "head_dim", 4096);
  at_most(intermediate_size, "intermediate_size", int64_t(1) << 20);
  at_most(max_position_embeddings, "max_position_embeddings", int64_t(1) << 24);
  at_most(num_experts, "num_experts (num_local_experts)", 4096);
  if (num_experts < 0) fail("model config: num_experts must not be negative (got {})", num_experts);
  if (sliding_window < 0) fail("model config: sliding_window must not be negative (got {})", sliding_window);
  if (!(norm_eps >= 0 && std::isfinite(norm_eps))) fail("model config: norm_eps must be finite and >= 0 (got {})", norm_eps);
  if (position == PositionType::Rope && !(rope.theta > 0 && std::isfinite(rope.theta)))
    fail("model config: rope theta must be finite and positive (got {})", rope.theta);
  if (position == PositionType::Rope && !(rope.factor > 0 && std::isfinite(rope.factor)))
    fail("model config: rope factor must be finite and positive (got {})", rope.factor);
  if (num_heads % num_kv_heads != 0)
    fail("model config: num_heads ({}) is not a multiple of num_kv_heads ({})", num_heads, num_kv_heads);
  if (position == PositionType::Rope && head_dim % 2 != 0) fail("model config: head_dim ({}) must be even for RoPE", head_dim);
  if (num_experts > 0 && (experts_top_k <= 0 || experts_top_k > num_experts))
    fail("model config: experts_top_k ({}) must be in 1..num_experts ({})", experts_top_k, num_experts);
  mapping.validate("model config");
  quant.validate("model config");
  check_quantization(*this);
}

json config_to_json(const ModelConfig& c) {
  return json{
      {"architecture", c.architecture},
      {"dtype", dtype_name(c.dtype)},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"num_layers", c.num_layers},
      {"num_heads", c.num_heads},
      {"num_kv_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"intermediate_size", c.intermediate_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"norm", norm_str(c.norm)},
      {"norm_eps", c.norm_eps},
      {"activation", act_str(c.activation)},
      {"position", pos_str(c.position)},
      {"rope",
       {{"theta", c.rope.theta},
        {"scaling", scaling_str(c.rope.scaling)},
        {"factor", c.rope.factor},
        {"low_freq_factor", c.rope.low_freq_factor},
        {"high_freq_factor", c.rope.high_freq_factor},
        {"original_max_position", c.rope.original_max_position},
        {"freq_dtype", dtype_name(c.rope.freq_dtype)}}},
      {"tie_embeddings", c.tie_embeddings},
      {"qkv_bias", c.qkv_bias},
      {"dense_bias", c.dense_bias},
      {"mlp_bias", c.mlp_bias},
      {"norm_bias", c.norm_bias},
      {"qk_norm", c.qk_norm},
      {"sliding_window", c.sliding_window},
      {"num_experts", c.num_experts},
      {"experts_top_k", c.experts_top_k},
      {"bos_token_id", c.bos_token_id},
      {"eos_token_ids", c.eos_token_ids},
      {"mapping", mapping_to_json(c.mapping)},
      {"quantization", quant_config_to_json(c.quant)},
  };
}

ModelConfig config_from_json(const json& j, const std::string& src) {
  Reader r{j, src};
  ModelConfig c;
  c.architecture = r.req<std::string>("architecture");
  c.dtype = dtype_from_name(r.req<std::string>("dtype"));
  c.vocab_size = r.req<int64_t>("vocab_size");
  c.hidden_size = r.req<int64_t>("hidden_size");
  c.num_layers = r.req<int64_t>("num_layers");
  c.num_heads = r.req<int64_t>("num_heads");
  c.num_kv_heads = r.req<int64_t>("num_kv_heads");
  c.head_dim = r.req<int64_t>("head_dim");
  c.intermediate_size = r.req<int64_t>("intermediate_size");
  c.max_position_embeddings = r.req<int64_t>("max_position_embeddings");
  auto norm = r.req<std::string>("norm");
  if (norm == "rmsnorm") c.norm = NormType::RMSNorm;
  else if (norm == "layernorm") c.norm = NormType::LayerNorm;
  else fail("{}: unknown norm '{}'", src, norm);
  c.norm_eps = r.req<double>("norm_eps");
  auto act = r.req<std::string>("activation");
  if (act == "silu_gated") c.activation = Activation::SiluGated;
  else if (act == "gelu_tanh") c.activation = Activation::GeluTanh;
  else fail("{}: unknown activation '{}'", src, act);
  auto pos = r.req<std::string>("position");
  if (pos == "rope") c.position = PositionType::Rope;
  else if (pos == "learned") c.position = PositionType::Learned;
  else fail("{}: unknown position '{}'", src, pos);
  Reader rr{r.req<json>("rope"), src};
  c.rope.theta = rr.req<double>("theta");
  auto sc = rr.req<std::string>("scaling");
  if (sc == "none") c.rope.scaling = RopeScaling::None;
  else if (sc == "linear") c.rope.scaling = RopeScaling::Linear;
  else if (sc == "llama3") c.rope.scaling = RopeScaling::Llama3;
  else fail("{}: unknown rope scaling '{}'", src, sc);
  c.rope.factor = rr.req<double>("factor");
  c.rope.low_freq_factor = rr.req<double>("low_freq_factor");
  c.rope.high_freq_factor = rr.req<double>("high_freq_factor");
  c.rope.original_max_position = rr.req<int64_t>("original_max_position");
  c.rope.freq_dtype = dtype_from_name(rr.req<std::string>("freq_dtype"));
  c.tie_embeddings = r.req<bool>("tie_embeddings");
  c.qkv_bias = r.req<bool>("qkv_bias");
  c.dense_bias = r.req<bool>("dense_bias");
  c.mlp_bias = r.req<bool>("mlp_bias");
  c.norm_bias = r.req<bool>("norm_bias");
  c.qk_norm = r.req<bool>("qk_norm");
  c.sliding_window = r.req<int64_t>("sliding_window");
  c.num_experts = r.req<int64_t>("num_experts");
  c.experts_top_k = r.req<int64_t>("experts_top_k");
  c.bos_token_id = r.opt<int64_t>("bos_token_id", -1);
  c.eos_token_ids = r.opt<std::vector<int64_t>>("eos_token_ids", {});
  if (r.has("mapping")) c.mapping = mapping_from_json(j["mapping"], src);
  if (r.has("quantization")) c.quant = quant_config_from_json(j["quantization"], src);
  try {
    c.validate();
  } catch (const Error& e) {
    fail("{}: {}", src, e.what());
  }
  return c;
}

ModelConfig config_from_hf(const json& j, const std::string& src) {
  Reader r{j, src};
  if (!r.has("architectures") || !j["architectures"].is_array() || j["architectures"].empty())
    fail("{}: missing config field 'architectures'", src);
  if (r.has("quantization_config")) {
    const json& q = j["quantization_config"];
    const std::string method = q.is_object() && q.contains("quant_method") ? q["quant_method"].dump() : q.dump();
    fail("{}: quantization_config (quant_method {}): kiln reads float Hugging Face checkpoints only; quantized ones "
         "are not supported yet", src, method);
  }
  ModelConfig c;
  c.architecture = j["architectures"][0].get<std::string>();
  const std::string& a = c.architecture;
  std::string dt = r.opt<std::string>("dtype", r.opt<std::string>("torch_dtype", "float32"));
  c.dtype = dtype_from_name(dt);
  if (c.dtype != DType::F32 && c.dtype != DType::F16 && c.dtype != DType::BF16)
    fail("{}: unsupported dtype '{}'", src, dt);
  c.vocab_size = r.req<int64_t>("vocab_size");
  if (r.has("bos_token_id")) c.bos_token_id = r.req<int64_t>("bos_token_id");
  if (r.has("eos_token_id")) c.eos_token_ids = int_or_list(j["eos_token_id"]);

  if (a == "GPT2LMHeadModel") {
    c.hidden_size = r.req<int64_t>("n_embd");
    c.num_layers = r.req<int64_t>("n_layer");
    c.num_heads = r.req<int64_t>("n_head");
    c.num_kv_heads = c.num_heads;
    c.head_dim = c.hidden_size / c.num_heads;
    c.intermediate_size = r.opt<int64_t>("n_inner", 4 * c.hidden_size);
    c.max_position_embeddings = r.req<int64_t>("n_positions");
    c.norm = NormType::LayerNorm;
    c.norm_eps = r.opt<double>("layer_norm_epsilon", 1e-5);
    auto act = r.opt<std::string>("activation_function", "gelu_new");
    if (act != "gelu_new" && act != "gelu_pytorch_tanh")
      fail("{}: unsupported activation_function '{}' (supported: gelu_new, gelu_pytorch_tanh)", src, act);
    c.activation = Activation::GeluTanh;
    c.position = PositionType::Learned;
    c.tie_embeddings = r.opt<bool>("tie_word_embeddings", true);
    c.qkv_bias = c.dense_bias = c.mlp_bias = c.norm_bias = true;
    if (r.opt<bool>("scale_attn_by_inverse_layer_idx", false) || r.opt<bool>("reorder_and_upcast_attn", false))
      fail("{}: unsupported GPT-2 option scale_attn_by_inverse_layer_idx/reorder_and_upcast_attn", src);
    if (!r.opt<bool>("scale_attn_weights", true)) fail("{}: unsupported GPT-2 option scale_attn_weights=false", src);
  } else if (a == "LlamaForCausalLM" || a == "MistralForCausalLM" || a == "Qwen2ForCausalLM" ||
             a == "Qwen3ForCausalLM" || a == "MixtralForCausalLM") {
    c.hidden_size = r.req<int64_t>("hidden_size");
    c.num_layers = r.req<int64_t>("num_hidden_layers");
    c.num_heads = r.req<int64_t>("num_attention_heads");
    c.num_kv_heads = r.opt<int64_t>("num_key_value_heads", c.num_heads);
    c.head_dim = r.opt<int64_t>("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
    c.intermediate_size = r.req<int64_t>("intermediate_size");
    c.max_position_embeddings = r.req<int64_t>("max_position_embeddings");
    c.norm = NormType::RMSNorm;
    c.norm_eps = r.opt<double>("rms_norm_eps", 1e-6);
    auto act = r.opt<std::string>("hidden_act", "silu");
    if (act != "silu") fail("{}: unsupported hidden_act '{}' (supported: silu)", src, act);
    c.activation = Activation::SiluGated;
    c.position = PositionType::Rope;
    c.rope = parse_hf_rope(j, src);  // freq_dtype stays float32 (kiln convert --rope-freq-dtype checkpoint rounds)
    c.tie_embeddings = r.opt<bool>("tie_word_embeddings", false);
    if (a == "Qwen2ForCausalLM") c.qkv_bias = true;
    else c.qkv_bias = r.opt<bool>("attention_bias", false);
    if (a == "LlamaForCausalLM" || a == "Qwen3ForCausalLM") c.dense_bias = c.qkv_bias;
    c.mlp_bias = r.opt<bool>("mlp_bias", false);
    c.qk_norm = (a == "Qwen3ForCausalLM");
    // Sliding window: Mistral/Mixtral apply it when set; Qwen only with use_sliding_window.
    bool use_sw = (a == "MistralForCausalLM" || a == "MixtralForCausalLM") ? true : r.opt<bool>("use_sliding_window", false);
    if (use_sw && r.has("sliding_window")) c.sliding_window = r.req<int64_t>("sliding_window");
    if (use_sw && c.sliding_window > 0 && a.rfind("Qwen", 0) == 0 && r.has("max_window_layers") &&
        r.req<int64_t>("max_window_layers") < c.num_layers)
      fail("{}: per-layer sliding windows (max_window_layers < num_hidden_layers) are not supported", src);
    if (a == "MixtralForCausalLM") {
      c.num_experts = r.req<int64_t>("num_local_experts");
      c.experts_top_k = r.req<int64_t>("num_experts_per_tok");
    }
  } else {
    fail("{}: unknown architecture '{}' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
         "Qwen3ForCausalLM, GPT2LMHeadModel, MixtralForCausalLM)", src, a);
  }
  try {
    c.validate();
  } catch (const Error& e) {
    fail("{}: {}", src, e.what());
  }
  return c;
}

}  // namespace kiln
