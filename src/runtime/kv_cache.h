// KV cache memory: one pool of fixed-size blocks for all layers, allocated on the engine's backend.
#pragma once
#include "backend/backend.h"
#include "model/config.h"

namespace kiln {

// The largest KV block: a block longer than any sequence only wastes memory, and the block table addresses
// slots as int32 (block * tokens_per_block + offset).
constexpr int32_t kMaxTokensPerBlock = 4096;

// Bytes one block takes across all layers (k and v).
size_t kv_block_bytes(const ModelConfig& m, DType dtype, int64_t tokens_per_block);
KvCacheDesc allocate_kv_cache(Backend& be, const ModelConfig& m, int64_t num_blocks, int64_t tokens_per_block);

}  // namespace kiln
