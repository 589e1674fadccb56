#include "runtime/kv_cache.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "model/weights.h"
#include "runtime/engine.h"

namespace kiln {

size_t kv_block_bytes(const ModelConfig& m, DType compute, int64_t tpb) {
  const DType dtype = kv_cache_dtype(m.quant, compute);
  return size_t(m.num_layers) * 2 * size_t(m.num_kv_heads) * size_t(tpb) * size_t(m.head_dim) * dtype_size(dtype);
}

KvCacheDesc allocate_kv_cache(Backend& be, const ModelConfig& m, int64_t num_blocks, int64_t tpb, Tensor scales) {
  if (num_blocks <= 0) fail("KV cache: no room for a single block");
  if (tpb <= 0) fail("--tokens-per-block {}: must be positive", tpb);
  const bool quantized = m.quant.kv_cache_quant_algo != KvCacheQuantAlgo::None;
  const std::vector<int64_t> scales_shape{m.num_layers, 2};  // [layers, k | v]
  if (quantized && (scales.empty() || scales.dtype != DType::F32 || scales.shape != scales_shape))
    fail("KV cache: kv_cache_quant_algo {} needs F32 scales [{}, 2], not {}",
         kv_cache_quant_algo_name(m.quant.kv_cache_quant_algo), m.num_layers,
         scales.empty() ? "none" : scales.shape_str());
  if (!quantized && !scales.empty()) fail("KV cache: scales {} for a float cache", scales.shape_str());
  KvCacheDesc d;
  d.dtype = kv_cache_dtype(m.quant, be.compute_dtype());
  d.scales = scales;
  d.num_layers = m.num_layers;
  d.num_blocks = num_blocks;
  d.num_kv_heads = m.num_kv_heads;
  d.tokens_per_block = tpb;
  d.head_dim = m.head_dim;
  // [layers, blocks, 2 (k, v), nkv, tpb, hd]
  d.pool = be.alloc(d.dtype, {m.num_layers, num_blocks, 2, m.num_kv_heads, tpb, m.head_dim});
  be.fill_zero(d.pool);
  return d;
}

Tensor kv_cache_scales(const Engine& e) {
  const ModelConfig& m = e.model();
  if (m.quant.kv_cache_quant_algo == KvCacheQuantAlgo::None) return Tensor();
  Backend& be = e.backend();
  std::vector<float> host(size_t(m.num_layers) * 2);  // [layers, 2]
  for (int64_t l = 0; l < m.num_layers; ++l) {
    const Tensor& s = e.weight(layer_name(l, "attention.kv_cache_scale"));
    be.download(&host[size_t(l) * 2], s, 8);
    for (int i = 0; i < 2; ++i)
      if (!(host[size_t(l) * 2 + i] > 0.0f) || !std::isfinite(host[size_t(l) * 2 + i]))
        fail("engine: {}[{}] = {}: a KV-cache scale must be positive and finite",
             layer_name(l, "attention.kv_cache_scale"), i, host[size_t(l) * 2 + i]);
  }
  Tensor t = be.alloc(DType::F32, {m.num_layers, 2});
  be.upload(t, host.data(), host.size() * 4);
  return t;
}

}  // namespace kiln
