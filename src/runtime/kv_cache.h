// KV cache memory: one pool of fixed-size blocks for all layers, allocated on the engine's backend.
#pragma once
#include "backend/backend.h"
#include "model/config.h"

namespace kiln {

// Bytes one block takes across all layers (k and v).
size_t kv_block_bytes(const ModelConfig& m, DType dtype, int64_t tokens_per_block);
KvCacheDesc allocate_kv_cache(Backend& be, const ModelConfig& m, int64_t num_blocks, int64_t tokens_per_block);

}  // namespace kiln
