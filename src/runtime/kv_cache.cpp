#include "runtime/kv_cache.h"

#include "core/error.h"

namespace kiln {

size_t kv_block_bytes(const ModelConfig& m, DType dtype, int64_t tpb) {
  return size_t(m.num_layers) * 2 * size_t(m.num_kv_heads) * size_t(tpb) * size_t(m.head_dim) * dtype_size(dtype);
}

KvCacheDesc allocate_kv_cache(Backend& be, const ModelConfig& m, int64_t num_blocks, int64_t tpb) {
  if (num_blocks <= 0) fail("KV cache: no room for a single block");
  if (tpb <= 0) fail("--tokens-per-block {}: must be positive", tpb);
  KvCacheDesc d;
  d.num_layers = m.num_layers;
  d.num_blocks = num_blocks;
  d.num_kv_heads = m.num_kv_heads;
  d.tokens_per_block = tpb;
  d.head_dim = m.head_dim;
  d.pool = be.alloc(be.compute_dtype(), {m.num_layers, num_blocks, 2, m.num_kv_heads, tpb, m.head_dim});
  be.fill_zero(d.pool);
  return d;
}

}  // namespace kiln
