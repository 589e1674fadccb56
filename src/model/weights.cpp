#include "model/weights.h"

#include <fmt/format.h>

#include "core/error.h"

namespace kiln {

std::string layer_name(int64_t layer, const std::string& suffix) { return fmt::format("layers.{}.{}", layer, suffix); }

namespace {

// The one walk over a config's tensors: the weight specs in file order, and the linear layers among them.
std::vector<WeightSpec> walk(const ModelConfig& c, std::vector<LinearSpec>* linears) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim, E = c.num_experts;
  const QuantScheme scheme = linear_quant_scheme(c.quant);
  std::vector<WeightSpec> w;
  auto plain = [&](const std::string& name, std::vector<int64_t> shape) { w.push_back({name, std::move(shape)}); };
  auto exact = [&](const std::string& name, std::vector<int64_t> shape, DType dt) {
    w.push_back({name, std::move(shape), true, dt});
  };
  auto linear = [&](const std::string& module, std::vector<int64_t> lead, int64_t N, int64_t K, bool bias) {
    LinearSpec l{module, lead, N, K, {}};
    if (scheme.quantized() && !c.quant.excludes(module)) l.scheme = scheme;
    const QuantScheme& s = l.scheme;
    if (!s.quantized()) {
      std::vector<int64_t> shape = lead;
      shape.push_back(N);
      shape.push_back(K);
      plain(module + ".weight", shape);
    } else {
      exact(module + ".weight", s.data_shape(lead, N, K), s.weight_dtype);
      exact(module + ".weight_scale", s.scale_shape(lead, N, K), DType::F32);
      if (s.zero_point) exact(module + ".weight_zero", s.scale_shape(lead, N, K), DType::I8);
      std::vector<int64_t> one = lead, per_k = lead;
      one.push_back(1);
      per_k.push_back(K);
      if (s.input_scale) exact(module + ".input_scale", one, DType::F32);
      if (s.pre_quant_scale) exact(module + ".pre_quant_scale", per_k, DType::F32);
    }
    if (bias) plain(module + ".bias", {N});
    if (linears) linears->push_back(std::move(l));
  };
  auto norm = [&](const std::string& name) {
    plain(name + ".weight", {H});
    if (c.norm_bias) plain(name + ".bias", {H});
  };
  plain("embed.weight", {c.vocab_size, H});
  if (c.position == PositionType::Learned) plain("pos_embed.weight", {c.max_position_embeddings, H});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    auto L = [&](const std::string& s) { return layer_name(i, s); };
    norm(L("input_norm"));
    linear(L("attention.qkv"), {}, c.qkv_size(), H, c.qkv_bias);
    if (c.qk_norm) {
      plain(L("attention.q_norm.weight"), {hd});
      plain(L("attention.k_norm.weight"), {hd});
    }
    linear(L("attention.dense"), {}, H, c.q_size(), c.dense_bias);
    if (c.quant.kv_cache_quant_algo != KvCacheQuantAlgo::None) exact(L("attention.kv_cache_scale"), {2}, DType::F32);
    norm(L("post_norm"));
    if (E > 0) {
      plain(L("moe.router.weight"), {E, H});
      linear(L("moe.gate_up"), {E}, 2 * I, H, false);
      linear(L("moe.down"), {E}, H, I, false);
    } else if (c.activation == Activation::SiluGated) {
      linear(L("mlp.gate_up"), {}, 2 * I, H, c.mlp_bias);
      linear(L("mlp.down"), {}, H, I, c.mlp_bias);
    } else {
      linear(L("mlp.fc"), {}, I, H, c.mlp_bias);
      linear(L("mlp.down"), {}, H, I, c.mlp_bias);
    }
  }
  norm("final_norm");
  if (!c.tie_embeddings) linear("lm_head", {}, c.vocab_size, H, false);
  return w;
}

}  // namespace

std::vector<WeightSpec> expected_weights(const ModelConfig& c) { return walk(c, nullptr); }

std::vector<LinearSpec> linear_layers(const ModelConfig& c) {
  std::vector<LinearSpec> l;
  walk(c, &l);
  return l;
}

void check_quantization(const ModelConfig& c) {
  const QuantConfig& q = c.quant;
  if (q.quant_algo == QuantAlgo::None) return;
  const auto linears = linear_layers(c);
  for (auto& l : linears) {
    const QuantScheme& s = l.scheme;
    if (s.granularity == QuantGranularity::PerGroup && l.K % s.group_size != 0)
      fail("model config: quantization.group_size {} does not divide {}'s {} input channels", s.group_size, l.module,
           l.K);
    if (s.packing == WeightPacking::Int4x2 && l.K % 2 != 0)
      fail("model config: quant_algo {}: {} has an odd number of input channels ({}), which int4 pairs cannot pack",
           quant_algo_name(q.quant_algo), l.module, l.K);
  }
  for (auto& pattern : q.exclude_modules) {
    // lm_head is a module of every model (with tied embeddings it is the embedding table, never quantized).
    bool found = module_pattern_matches(pattern, "lm_head");
    for (auto& l : linears) found = found || module_pattern_matches(pattern, l.module);
    if (!found)
      fail("model config: quantization.exclude_modules '{}' names no linear layer of this model (modules are "
           "named like 'lm_head', 'layers.0.attention.qkv', 'layers.*.mlp.down')", pattern);
  }
}

}  // namespace kiln
