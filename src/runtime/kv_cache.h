// KV cache memory: one pool of fixed-size blocks for all layers, allocated on the engine's backend.
#pragma once
#include "backend/backend.h"
#include "model/config.h"

namespace kiln {

// The largest KV block: a block longer than any sequence only wastes memory, and the block table addresses
// slots as int32 (block * tokens_per_block + offset).
constexpr int32_t kMaxTokensPerBlock = 4096;

// Bytes one block takes across all layers (k and v), in the cache's dtype: kv_cache_dtype(m.quant, compute)
// (src/model/quant.h), one byte per element for a quantized cache.
size_t kv_block_bytes(const ModelConfig& m, DType compute, int64_t tokens_per_block);
// The pool in kv_cache_dtype(m.quant, the backend's compute dtype), zeroed. A quantized cache (kv_cache_quant_algo)
// needs `scales`, F32 [num_layers, 2] on the backend (the engine's layers.{i}.attention.kv_cache_scale); a float
// cache takes none.
KvCacheDesc allocate_kv_cache(Backend& be, const ModelConfig& m, int64_t num_blocks, int64_t tokens_per_block,
                              Tensor scales = {});

class Engine;
// The engine's KV-cache scales F32 [num_layers, 2] on its backend, gathered from layers.{i}.attention.kv_cache_scale;
// empty for a float cache.
Tensor kv_cache_scales(const Engine& e);

}  // namespace kiln
