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
// A batch-invariant engine (BackendConfig::batch_invariant; batch_invariant.h) gets one cuBLASLt algorithm per
// shape instead, without split-K, valid and bit-for-bit row-invariant at every bucket (one entry, max_m the
// largest); a model the invariant attention cannot run is refused before anything is measured.
// The planner speaks the backend interface's types; the runtime hands it to `kiln build` (BuildOptions::plan)
// through target_planner (runtime/backend_factory.h), so that the backend does not depend on the build layer.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "backend/backend_config.h"

namespace kiln {

// What the planner decides for an engine.
struct CudaPlan {
  DType weight_dtype = DType::BF16;   // the engine file's weights
  DType compute_dtype = DType::BF16;  // float16 or bfloat16
  std::string gpu_arch;               // this GPU's ("sm_90")
  nlohmann::json tactics = nlohmann::json::object();
};

// `engine`: the model, limits and batch_invariant of the engine to build (its other fields are what this
// decides). `dtype`: the requested compute dtype, else the model's (float16 stays, anything else is bfloat16).
CudaPlan plan_cuda_engine(const BackendConfig& engine, std::optional<DType> dtype);

}  // namespace kiln
