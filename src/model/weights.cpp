#include "model/weights.h"

#include <fmt/format.h>

#include <set>

#include "core/error.h"
#include "io/safetensors.h"

namespace kiln {

std::string layer_name(int64_t layer, const std::string& suffix) { return fmt::format("layers.{}.{}", layer, suffix); }

std::vector<WeightSpec> expected_weights(const ModelConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim, E = c.num_experts;
  std::vector<WeightSpec> w;
  w.push_back({"embed.weight", {c.vocab_size, H}});
  if (c.position == PositionType::Learned) w.push_back({"pos_embed.weight", {c.max_position_embeddings, H}});
  auto norm = [&](const std::string& name) {
    w.push_back({name + ".weight", {H}});
    if (c.norm_bias) w.push_back({name + ".bias", {H}});
  };
  for (int64_t i = 0; i < c.num_layers; ++i) {
    auto L = [&](const std::string& s) { return layer_name(i, s); };
    norm(L("input_norm"));
    w.push_back({L("attention.qkv.weight"), {c.qkv_size(), H}});
    if (c.qkv_bias) w.push_back({L("attention.qkv.bias"), {c.qkv_size()}});
    if (c.qk_norm) {
      w.push_back({L("attention.q_norm.weight"), {hd}});
      w.push_back({L("attention.k_norm.weight"), {hd}});
    }
    w.push_back({L("attention.dense.weight"), {H, c.q_size()}});
    if (c.dense_bias) w.push_back({L("attention.dense.bias"), {H}});
    norm(L("post_norm"));
    if (E > 0) {
      w.push_back({L("moe.router.weight"), {E, H}});
      w.push_back({L("moe.gate_up.weight"), {E, 2 * I, H}});
      w.push_back({L("moe.down.weight"), {E, H, I}});
    } else if (c.activation == Activation::SiluGated) {
      w.push_back({L("mlp.gate_up.weight"), {2 * I, H}});
      if (c.mlp_bias) w.push_back({L("mlp.gate_up.bias"), {2 * I}});
      w.push_back({L("mlp.down.weight"), {H, I}});
      if (c.mlp_bias) w.push_back({L("mlp.down.bias"), {H}});
    } else {
      w.push_back({L("mlp.fc.weight"), {I, H}});
      if (c.mlp_bias) w.push_back({L("mlp.fc.bias"), {I}});
      w.push_back({L("mlp.down.weight"), {H, I}});
      if (c.mlp_bias) w.push_back({L("mlp.down.bias"), {H}});
    }
  }
  norm("final_norm");
  if (!c.tie_embeddings) w.push_back({"lm_head.weight", {c.vocab_size, H}});
  return w;
}

void check_weight_set(const SafetensorsFile& f, const std::vector<WeightSpec>& specs, const std::string& config) {
  std::set<std::string> expected;
  for (auto& spec : specs) {
    expected.insert(spec.name);
    if (!f.has(spec.name)) fail("{}: missing tensor '{}' that {} describes", f.path(), spec.name, config);
    const TensorView& t = f.get(spec.name);
    if (t.shape != spec.shape) {
      TensorView want;
      want.shape = spec.shape;
      fail("{}: tensor '{}' has shape {} but {} describes {}", f.path(), spec.name, t.shape_str(), config,
           want.shape_str());
    }
  }
  for (auto& [name, t] : f.tensors())
    if (!expected.count(name))
      fail("{}: tensor '{}' is not part of the model {} describes (was the config edited?)", f.path(), name, config);
}

}  // namespace kiln
