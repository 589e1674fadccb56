// What each target's kernels run beyond the float spine: quantized GEMMs (per quant_algo) and quantized KV caches
// (per kv_cache_quant_algo). `kiln build` refuses a checkpoint that needs a kernel its target lacks, and engine load
// refuses such an engine, with one error naming the missing kernels. The cpu target runs every quant_algo and KV
// cache (its reference kernels); cuda none yet. When a kernel lands, its entry in target_kernels.cpp says so.
#pragma once
#include <string>

#include "model/quant.h"

namespace kiln {

// Empty when `target` runs every kernel `q` needs; else "the cuda target has no FP8 GEMM kernel yet" (and "... no
// FP8 KV-cache attention kernel ..." for the KV cache; both in one sentence when both are missing).
std::string missing_quant_kernels(const std::string& target, const QuantConfig& q);

// Throws "<what> has quant_algo FP8: the cuda target has no FP8 GEMM kernel yet" (what: "checkpoint DIR", "engine
// DIR") when missing_quant_kernels is not empty.
void require_quant_kernels(const std::string& target, const QuantConfig& q, const std::string& what);

}  // namespace kiln
