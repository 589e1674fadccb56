#include "convert/hf_map.h"

#include <fmt/format.h>

#include "core/error.h"
#include "model/weights.h"

namespace kiln {

namespace {

// Llama, Mistral, Qwen2, Qwen3, Mixtral share the "model.layers.{i}.self_attn.*" scheme.
std::vector<HfPart> llama_parts(const ModelConfig& c, const std::string& kiln_name) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, Q = c.q_size(), KV = c.kv_size(), hd = c.head_dim;
  if (kiln_name == "embed.weight") return {{"model.embed_tokens.weight", {c.vocab_size, H}}};
  if (kiln_name == "final_norm.weight") return {{"model.norm.weight", {H}}};
  if (kiln_name == "lm_head.weight") return {{"lm_head.weight", {c.vocab_size, H}}};
  int64_t i = -1;
  char rest[128] = {0};
  if (std::sscanf(kiln_name.c_str(), "layers.%ld.%127s", &i, rest) != 2) fail("no HF mapping for '{}'", kiln_name);
  const std::string r = rest, p = fmt::format("model.layers.{}.", i);
  if (r == "input_norm.weight") return {{p + "input_layernorm.weight", {H}}};
  if (r == "post_norm.weight") return {{p + "post_attention_layernorm.weight", {H}}};
  if (r == "attention.qkv.weight")
    return {{p + "self_attn.q_proj.weight", {Q, H}}, {p + "self_attn.k_proj.weight", {KV, H}},
            {p + "self_attn.v_proj.weight", {KV, H}}};
  if (r == "attention.qkv.bias")
    return {{p + "self_attn.q_proj.bias", {Q}}, {p + "self_attn.k_proj.bias", {KV}}, {p + "self_attn.v_proj.bias", {KV}}};
  if (r == "attention.q_norm.weight") return {{p + "self_attn.q_norm.weight", {hd}}};
  if (r == "attention.k_norm.weight") return {{p + "self_attn.k_norm.weight", {hd}}};
  if (r == "attention.dense.weight") return {{p + "self_attn.o_proj.weight", {H, Q}}};
  if (r == "attention.dense.bias") return {{p + "self_attn.o_proj.bias", {H}}};
  if (r == "mlp.gate_up.weight") return {{p + "mlp.gate_proj.weight", {I, H}}, {p + "mlp.up_proj.weight", {I, H}}};
  if (r == "mlp.gate_up.bias") return {{p + "mlp.gate_proj.bias", {I}}, {p + "mlp.up_proj.bias", {I}}};
  if (r == "mlp.down.weight") return {{p + "mlp.down_proj.weight", {H, I}}};
  if (r == "mlp.down.bias") return {{p + "mlp.down_proj.bias", {H}}};
  const std::string moe = p + "block_sparse_moe.";
  if (r == "moe.router.weight") return {{moe + "gate.weight", {c.num_experts, H}}};
  if (r == "moe.gate_up.weight") {
    std::vector<HfPart> parts;
    for (int64_t e = 0; e < c.num_experts; ++e) {
      parts.push_back({fmt::format("{}experts.{}.w1.weight", moe, e), {I, H}});
      parts.push_back({fmt::format("{}experts.{}.w3.weight", moe, e), {I, H}});
    }
    return parts;
  }
  if (r == "moe.down.weight") {
    std::vector<HfPart> parts;
    for (int64_t e = 0; e < c.num_experts; ++e) parts.push_back({fmt::format("{}experts.{}.w2.weight", moe, e), {H, I}});
    return parts;
  }
  fail("no HF mapping for '{}'", kiln_name);
}

std::vector<HfPart> gpt2_parts(const ModelConfig& c, const std::string& kiln_name) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  if (kiln_name == "embed.weight") return {{"transformer.wte.weight", {c.vocab_size, H}}};
  if (kiln_name == "pos_embed.weight") return {{"transformer.wpe.weight", {c.max_position_embeddings, H}}};
  if (kiln_name == "final_norm.weight") return {{"transformer.ln_f.weight", {H}}};
  if (kiln_name == "final_norm.bias") return {{"transformer.ln_f.bias", {H}}};
  if (kiln_name == "lm_head.weight") return {{"lm_head.weight", {c.vocab_size, H}}};
  int64_t i = -1;
  char rest[128] = {0};
  if (std::sscanf(kiln_name.c_str(), "layers.%ld.%127s", &i, rest) != 2) fail("no HF mapping for '{}'", kiln_name);
  const std::string r = rest, p = fmt::format("transformer.h.{}.", i);
  // Conv1D stores [in, out]; kiln stores [out, in].
  if (r == "input_norm.weight") return {{p + "ln_1.weight", {H}}};
  if (r == "input_norm.bias") return {{p + "ln_1.bias", {H}}};
  if (r == "post_norm.weight") return {{p + "ln_2.weight", {H}}};
  if (r == "post_norm.bias") return {{p + "ln_2.bias", {H}}};
  if (r == "attention.qkv.weight") return {{p + "attn.c_attn.weight", {H, 3 * H}, true}};
  if (r == "attention.qkv.bias") return {{p + "attn.c_attn.bias", {3 * H}}};
  if (r == "attention.dense.weight") return {{p + "attn.c_proj.weight", {H, H}, true}};
  if (r == "attention.dense.bias") return {{p + "attn.c_proj.bias", {H}}};
  if (r == "mlp.fc.weight") return {{p + "mlp.c_fc.weight", {H, I}, true}};
  if (r == "mlp.fc.bias") return {{p + "mlp.c_fc.bias", {I}}};
  if (r == "mlp.down.weight") return {{p + "mlp.c_proj.weight", {I, H}, true}};
  if (r == "mlp.down.bias") return {{p + "mlp.c_proj.bias", {H}}};
  fail("no HF mapping for '{}'", kiln_name);
}

}  // namespace

std::vector<Recipe> hf_recipes(const ModelConfig& c) {
  std::vector<Recipe> out;
  for (auto& w : expected_weights(c)) {
    if (w.quant) continue;  // quantized data and parameters: the importer's (src/convert/hf_quant.h)
    Recipe r{w.name, w.shape, {}};
    r.parts = c.architecture == "GPT2LMHeadModel" ? gpt2_parts(c, w.name) : llama_parts(c, w.name);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace kiln
