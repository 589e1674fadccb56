#include "runtime/kv_cache.h"

#include "core/error.h"

namespace kiln {

size_t kv_block_bytes(const ModelConfig& m, DType dtype, int64_t tpb) {
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

}  // namespace kiln
