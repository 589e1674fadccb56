// The cuda target's engine planner: compute dtype, GPU architecture, and GEMM tactics measured on this GPU.
//
// For every GEMM shape the engine runs (fused qkv, attention output, gate/up or fc, down, lm_head; MoE routers)
// and every token-count bucket 1, 2, 4, ... up to max_num_tokens (lm_head: up to max_batch_size x beam), the
// planner times the algorithms cuBLASLt's heuristics offer plus kiln's GEMV (buckets of at most 8 rows; 4 or 8
// loads in flight per lane) and
// stores the fastest in engine.json "tactics":
//   {"cublaslt_version": N, "device": "...", "gemm": {"n6144_k4096_bf16": [{"max_m": 1, "kind": "gemv", "unroll": 8},
//     {"max_m": 2, "kind": "cublaslt", "algo": "<hex of cublasLtMatmulAlgo_t>", "us": 12.3}, ...]}}
// The runtime reads them (CudaBackend::configure) and never searches again.
// A batch-invariant engine (EngineInfo::batch_invariant; batch_invariant.h) gets one cuBLASLt algorithm per shape
// instead, without split-K, valid and bit-for-bit row-invariant at every bucket (one entry, max_m the largest); a
// model the invariant attention cannot run is refused before anything is measured.
#pragma once
#include <optional>

#include "build/engine_builder.h"

namespace kiln {

TargetPlan plan_cuda_engine(const EngineInfo& info, std::optional<DType> dtype);

}  // namespace kiln
