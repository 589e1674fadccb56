// Batch-invariant mode of the cuda backend (engine.json "batch_invariant", `kiln build --batch-invariant`): a
// request's tokens, log-probs and beam scores do not depend on what else is in the step, on chunked context, on
// preemption and recompute, or on prefix reuse. What differs from the default paths (which stay as they are):
//
//  - GEMMs (gemm.h, GemmRunner::set_invariant): one cuBLASLt algorithm per shape for every row count, with one K
//    split and no reduction scheme, never the GEMV (so none of its fusions). The planner picks it among the
//    heuristics' candidates that run every token-count bucket and give bit-identical rows at every bucket.
//  - Attention: every query row of a step, prompt-chunk token or generated token alike, goes through the split-KV
//    decode kernel (attention_decode.cu, AttentionKParams::invariant): a row's keys are cut into chunks of
//    kInvariantChunk counted from its first key, so its splits and their merge depend on its own context only.
//    No tensor-core decode kernel, no context kernel, no RoPE fused into attention (rope_kv writes every K/V first).
//
// Row-independent in every mode, so unchanged: embedding, norms, rope_kv, activations, MoE routing, the grouped
// expert GEMMs (a fixed K loop per output element, whatever the expert's row count) and the combine, gather, argmax,
// and sampling (fixed-order sums; top-p's histogram masses are exact fixed-point sums, sampling.cu).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "backend/cuda/device_memory.h"
#include "backend/cuda/kernels.h"
#include "model/config.h"

namespace kiln::cuda {

constexpr int kInvariantChunk = 256;  // keys per split of a query row (a multiple of every key round, 64..256)

// Why this model cannot run batch-invariant on the cuda backend, or "" when it can.
std::string batch_invariant_unsupported(const ModelConfig& m);

// The invariant attention: workspaces sized once (configure) so that recording a step graph never allocates,
// and the launches over a step's rows (several when the partials of all rows would exceed the workspace).
class InvariantAttention {
 public:
  // Refuses a model batch_invariant_unsupported names. max_seq_len: the longest context (the grid's splits);
  // graph_rows: rows one launch must hold at least (a decode step of the largest batch).
  void configure(const ModelConfig& m, int64_t max_seq_len, int64_t graph_rows);
  // k: the step's kernel params (pointers, sizes, scale, window); token_seq: I32 [T] on the device.
  void run(AttentionKParams k, const int32_t* token_seq, bool capturing, cudaStream_t s);

 private:
  int64_t splits_ = 0, rows_ = 0, nh_ = 0, nkv_ = 0, hd_ = 0;
  DeviceBuffer part_o_, part_lse_, counters_;  // [rows_, nh, splits_, hd], [rows_, nh, splits_], [rows_, nkv]
};

}  // namespace kiln::cuda
