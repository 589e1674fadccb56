// The cuda backend's kernels: one params struct per kernel (raw device pointers, sizes, dtype), check() naming
// what is wrong (kiln::Error), and invoke(params, stream). Tensors are row-major; "T" is the compute dtype
// (F16 or BF16). Every kernel is templated over T (cuda_common.cuh dispatches), none is copied per dtype.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/sampling_math.h"
#include "core/dtype.h"

namespace kiln {
struct SampleParams;
struct TopLogProbsParams;
}  // namespace kiln

namespace kiln::cuda {

// out[t] = table[ids[t]] (+ pos_table[positions[t]]). Out-of-range ids/positions set *error (1: id, 2: position)
// and write zeros; the backend reports them at the next synchronization.
struct EmbeddingKParams {
  const int32_t* ids = nullptr;        // [T]
  const void* table = nullptr;         // T [V, H]
  const int32_t* positions = nullptr;  // [T]
  const void* pos_table = nullptr;     // T [P, H] or null
  void* out = nullptr;                 // T [T, H]
  int64_t T = 0, H = 0, V = 0, P = 0;
  int* error = nullptr;  // [1] device flag
  DType dt = DType::BF16;
  void check() const;
};
void invoke(const EmbeddingKParams& p, cudaStream_t s);

// Several small host-to-device copies as one kernel: item i copies bytes[i] (a multiple of 4) from src[i], pinned
// host memory mapped into the device's address space, to dst[i]. Replaces a copy-engine transfer per item (each a
// few microseconds of the stream's time) with one launch. download_async uses it the other way round (device
// memory to a mapped host slot).
constexpr int kUploadItems = 12;
struct UploadKParams {
  int n = 0;
  const void* src[kUploadItems] = {};
  void* dst[kUploadItems] = {};
  int64_t bytes[kUploadItems] = {};
  void check() const;
};
void invoke(const UploadKParams& p, cudaStream_t s);

// residual += add (if add); out = norm(residual) * weight (+ bias). RMSNorm or LayerNorm, fp32 statistics.
// (16-byte vectors and a single pass over registers when H % 8 == 0 and H <= 32768.)
struct NormKParams {
  bool layer_norm = false;
  float eps = 1e-6f;
  const void* add = nullptr;  // T [T, H] or null
  void* residual = nullptr;   // T [T, H] in/out
  const void* weight = nullptr;  // T [H]
  const void* bias = nullptr;    // T [H] or null
  void* out = nullptr;           // T [T, H]
  int64_t T = 0, H = 0;
  DType dt = DType::BF16;
  void check() const;
};
void invoke(const NormKParams& p, cudaStream_t s);

// gelu: out = gelu_tanh(in) with in [T, I]; silu-gated: out = silu(in[:, :I]) * in[:, I:] with in [T, 2I].
struct ActKParams {
  bool gelu = false;
  const void* in = nullptr;  // T [T, 2I] or [T, I]
  void* out = nullptr;       // T [T, I]
  int64_t T = 0, I = 0;
  DType dt = DType::BF16;
  void check() const;
};
void invoke(const ActKParams& p, cudaStream_t s);

// out[r] = x[rows[r]]
struct GatherKParams {
  const void* x = nullptr;         // [T, H]
  const int32_t* rows = nullptr;   // [R]
  void* out = nullptr;             // [R, H]
  int64_t R = 0, H = 0, T = 0;
  DType dt = DType::BF16;
  void check() const;
};
void invoke(const GatherKParams& p, cudaStream_t s);

// Split over `blocks` slices of the vocabulary per row; the last block of a row to finish reduces the partials
// (an arrival counter per row, reset by that block).
struct ArgmaxKParams {
  const float* logits = nullptr;  // [R, V]
  int32_t* out = nullptr;         // [R]
  int64_t R = 0, V = 0;
  int blocks = 1;                  // slices per row
  float* part_val = nullptr;       // [R, blocks] (blocks > 1)
  int32_t* part_idx = nullptr;     // [R, blocks]
  int* counters = nullptr;         // [R], zero between launches
  void check() const;
  static int blocks_for(int64_t V) { return int(V >= 16384 ? 32 : 1); }
};
void invoke(const ArgmaxKParams& p, cudaStream_t s);

// Backend::sample and Backend::top_log_probs (sampling.cu; semantics in backend.h): one CTA of 1024 threads per
// row, which keeps its private copy of the logits (penalized, banned, then filtered to -inf) in a row of `work`.
struct SampleKParams {
  const float* logits = nullptr;            // [L, V]
  const SampleRowParams* rows = nullptr;    // [R]
  const PenaltyEntry* penalties = nullptr;  // [num_penalties] or null
  const int32_t* bans = nullptr;            // [num_bans] or null
  float* work = nullptr;                    // [R, V]
  int32_t* ids = nullptr;                   // sample: [R]; top_log_probs: [R, k]
  float* values = nullptr;                  // sample: log-probs [R]; top_log_probs: [R, k]
  int64_t R = 0, L = 0, V = 0, num_penalties = 0, num_bans = 0;
  int64_t k = 0;  // top_log_probs: candidates per row, 1 <= k <= min(V, kMaxTopLogProbs)
  void check(bool top) const;
};
void invoke_sample(const SampleKParams& p, cudaStream_t s);
void invoke_top_log_probs(const SampleKParams& p, cudaStream_t s);
// The kernel params of an op's tensors, checked (kiln::Error naming what is wrong); `work` is left to the caller.
// In sampling_params.cpp (g++: backend.h is no header for nvcc).
SampleKParams sample_kparams(const SampleParams& p);
SampleKParams sample_kparams(const TopLogProbsParams& p);

// out[i] = scale * random_uniform(seed, i) (backend.h), rounded to dt.
struct RandomKParams {
  void* out = nullptr;  // dt [n]
  int64_t n = 0;
  uint64_t seed = 0;
  float scale = 1.0f;
  DType dt = DType::BF16;
  void check() const;
};
void invoke(const RandomKParams& p, cudaStream_t s);

// out[t, n] += bias[n] for out of dtype out_dt (F32 or T).
struct BiasKParams {
  void* out = nullptr;         // out_dt [T, N]
  const void* bias = nullptr;  // T [N]
  int64_t T = 0, N = 0;
  DType dt = DType::BF16, out_dt = DType::BF16;
  void check() const;
};
void invoke(const BiasKParams& p, cudaStream_t s);

// Converts n elements between F32/F16/BF16 on the device.
struct ConvertKParams {
  const void* in = nullptr;
  void* out = nullptr;
  int64_t n = 0;
  DType in_dt = DType::F32, out_dt = DType::BF16;
  void check() const;
};
void invoke(const ConvertKParams& p, cudaStream_t s);

// In place on qkv [T, (nh + 2 nkv) hd]: per-head RMSNorm of q and k (when q_norm/k_norm), RoPE with the given
// inverse frequencies (rotate-half; angles in fp64 as the cpu backend), then k and v written into the paged
// cache layer [num_blocks, 2, nkv, tpb, hd] at slots[t] (block = slot / tpb, offset = slot % tpb).
struct RopeKvKParams {
  void* qkv = nullptr;
  const void* q_norm = nullptr;      // T [hd] or null
  const void* k_norm = nullptr;      // T [hd] or null
  float qk_norm_eps = 1e-6f;
  const float* inv_freq = nullptr;   // [hd / 2], or null: no rotation
  const float* cos_sin = nullptr;    // [table_len, hd]: cos | sin per position (fp64-exact), or null
  int64_t table_len = 0;
  const int32_t* positions = nullptr;  // [T]
  const int32_t* slots = nullptr;      // [T]
  void* cache = nullptr;               // T [num_blocks, 2, nkv, tpb, hd] (one layer)
  int64_t T = 0, nh = 0, nkv = 0, hd = 0, tpb = 0, num_blocks = 0;
  DType dt = DType::BF16;
  void check() const;
  size_t smem_bytes() const;
};
void invoke(const RopeKvKParams& p, cudaStream_t s);

// Paged causal attention of every new token over its sequence's cached keys, GQA, optional sliding window
// (keys p - window < k <= p). q from qkv, k and v from the cache layer.
struct AttentionKParams {
  const void* qkv = nullptr;          // T [T, (nh + 2 nkv) hd]
  void* out = nullptr;                // T [T, nh hd]
  const void* cache = nullptr;        // T [num_blocks, 2, nkv, tpb, hd] (one layer)
  const int32_t* seq_offsets = nullptr;   // [S + 1]
  const int32_t* num_cached = nullptr;    // [S]
  const int32_t* block_tables = nullptr;  // [S, max_blocks]
  int64_t T = 0, S = 0, nh = 0, nkv = 0, hd = 0, tpb = 0, max_blocks = 0, window = 0;
  int64_t max_new_tokens = 0;  // context kernel: query tiles per sequence
  bool skip_single = false;    // context kernel: leave sequences with one new token to the decode kernel
  float scale = 1.0f;
  // Decode kernel (one new token per sequence): split-KV partials and per-(seq, kv head) arrival counters.
  int num_splits = 1;
  float* part_o = nullptr;     // [S, nh, num_splits, hd]
  float* part_lse = nullptr;   // [S, nh, num_splits]
  int* counters = nullptr;     // [S, nkv], zero between launches
  // Decode kernel: what rope_kv would do first, fused in (head_dim a power of two, 32..256, no q/k norm): q and
  // the new k rotated (cos | sin from the table, from inv_freq in fp64 past it, as rope_kv), the new k and v
  // written to the cache at slots[t], and the rotated q and k written back into qkv.
  bool fuse_rope = false;
  const float* rope_inv_freq = nullptr;  // [hd / 2]
  const float* rope_cos_sin = nullptr;   // [rope_table_len, hd] or null
  int64_t rope_table_len = 0;
  const int32_t* slots = nullptr;        // [T]
  // Decode kernel, batch-invariant mode (batch_invariant.h): every token of the step is a query row (its sequence
  // from token_seq, its position num_cached + its index in the chunk), rows [row0, row0 + rows) in this launch;
  // a row's keys are split into chunks of inv_chunk (at most num_splits of them), so its result depends on its
  // own context only. Partials and counters are indexed by row - row0 instead of the sequence. No fused RoPE.
  bool invariant = false;
  const int32_t* token_seq = nullptr;  // [T]
  int64_t row0 = 0, rows = 0;
  int inv_chunk = 0;
  DType dt = DType::BF16;
  void check() const;
};
bool decode_attention_supported(int64_t nh, int64_t nkv);  // heads per kv head in {1, 2, 3, 4, 8}
void invoke_context_attention(const AttentionKParams& p, cudaStream_t s);  // flash-style, tensor cores
// Split-KV + in-kernel reduction, over the sequences with exactly one new token (the others are skipped), or in
// invariant mode over every token's query row.
void invoke_decode_attention(const AttentionKParams& p, cudaStream_t s);

// The same on tensor cores, without splits (for batches that fill the GPU): the G query heads of a kv head are
// the rows of one mma tile. Heads per kv head <= 16, head_dim <= 128.
bool decode_mma_attention_supported(int64_t nh, int64_t nkv, int64_t hd);
void invoke_decode_mma_attention(const AttentionKParams& p, cudaStream_t s);

// cos | sin table for RoPE: out[pos, i] = cos(pos * inv_freq[i]), out[pos, hd/2 + i] = sin(...) (fp64, rounded).
struct RopeTableKParams {
  const float* inv_freq = nullptr;  // [hd / 2]
  float* out = nullptr;             // [len, hd]
  int64_t len = 0, hd = 0;
  void check() const;
};
void invoke(const RopeTableKParams& p, cudaStream_t s);

// out[t, n] = sum_k x[t, k] w[n, k] (+ bias[n]) for a few rows t (T <= kGemvMaxRows): one weight pass.
constexpr int kGemvMaxRows = 8;
constexpr size_t kGemvNormSmem = 48 * 1024;
struct GemvKParams {
  const void* x = nullptr;     // T [T, K]
  const void* w = nullptr;     // T [N, K]
  const void* bias = nullptr;  // T [N] or null
  void* out = nullptr;         // out_dt [T, N]
  int64_t T = 0, N = 0, K = 0;
  DType dt = DType::BF16, out_dt = DType::BF16;
  int unroll = 4;           // 16-byte weight loads in flight per lane: 4 or 8 (a build-time tactic)
  bool silu_gated = false;  // w = [gate rows; up rows]: out [T, N / 2] = silu(x w_gate^T + b) * (x w_up^T + b)
  void* gate_up = nullptr;  // silu_gated: also write the [T, N] gate | up values here (what linear() writes)
  // Fused RMSNorm prologue: x := rmsnorm(norm_residual) * norm_weight, computed per block into shared memory
  // (and written to x by block 0, as the norm op would). Needs T * K * sizeof(T) <= kGemvNormSmem.
  const void* norm_residual = nullptr;  // T [T, K]
  const void* norm_weight = nullptr;    // T [K]
  float norm_eps = 0.f;
  // Fused residual epilogue: residual[t, n] = round(residual[t, n] + out[t, n]) (out is still written).
  void* residual = nullptr;  // T [T, N]
  // Before waiting on the previous kernel (programmatic dependent launch), the launch prefetches up to this
  // many bytes of its weights into L2 (each warp the start of its own columns): while a latency-bound kernel
  // (attention) runs, memory would otherwise idle. 0: none.
  int64_t l2_prefetch_bytes = 0;
  // And then, with what is left of that budget, the first bytes of the next GEMV's weights (gated: of each half,
  // the rows that GEMV reads first): loaded while this kernel waits and runs from L2, memory would idle.
  const void* l2_next = nullptr;
  int64_t l2_next_bytes = 0;  // the next weights' size
  bool l2_next_gated = false;
  // Fused greedy choice (float32 output): argmax_out[t] = the lowest column holding row t's maximum (NaN never
  // chosen; 0 if nothing else). Blocks merge 64-bit keys (the value's order bits, then the complemented column)
  // by atomicMax into argmax_keys[t]; the last block to finish (argmax_keys[T] counts them) writes the choices
  // and zeroes the keys and the counter for the next launch.
  int32_t* argmax_out = nullptr;              // I32 [T]
  unsigned long long* argmax_keys = nullptr;  // [T + 1], zero between launches
  void check() const;
  static bool supports(int64_t T, int64_t K) { return T >= 1 && T <= kGemvMaxRows && K % 8 == 0; }
};
void invoke(const GemvKParams& p, cudaStream_t s);

// MoE routing: per token, softmax over the router logits, top-k (stable: lower expert first on ties),
// renormalized weights; then tokens grouped by expert: offsets[e] .. offsets[e + 1] are expert e's slots,
// slot_token[j] the token of slot j, token_slot[t * k + i] the slot of token t's i-th choice.
struct MoeRouteKParams {
  const float* logits = nullptr;  // [T, E]
  int64_t T = 0, E = 0, top_k = 0;
  float* topk_weight = nullptr;   // [T, k]
  int32_t* topk_expert = nullptr; // [T, k]
  int32_t* offsets = nullptr;     // [E + 1]
  int32_t* slot_token = nullptr;  // [T k]
  int32_t* token_slot = nullptr;  // [T k]
  void check() const;
};
void invoke(const MoeRouteKParams& p, cudaStream_t s);

// Grouped GEMM over expert segments: out[j, n] = sum_k x[row(j), k] w[e, n, k] for slots j of expert e,
// row(j) = gather ? gather[j] : j. Tensor cores (wmma), fp32 accumulation.
struct GroupedGemmKParams {
  const void* x = nullptr;        // T [*, K]
  const int32_t* gather = nullptr;  // [M] or null
  const void* w = nullptr;        // T [E, N, K]
  const int32_t* offsets = nullptr;  // [E + 1]
  void* out = nullptr;            // out_dt [M, N]
  int64_t E = 0, M = 0, N = 0, K = 0;
  int64_t max_group_rows = 0;  // bound on any one expert's rows (the token count: one choice per expert)
  DType dt = DType::BF16, out_dt = DType::BF16;
  void check() const;
};
void invoke(const GroupedGemmKParams& p, cudaStream_t s);

// out[t] = sum_i topk_weight[t, i] * y[token_slot[t k + i]] (fixed order: deterministic).
struct MoeCombineKParams {
  const float* y = nullptr;          // [T k, H]
  const float* topk_weight = nullptr;  // [T, k]
  const int32_t* token_slot = nullptr; // [T k]
  void* out = nullptr;               // T [T, H]
  int64_t T = 0, H = 0, top_k = 0;
  DType dt = DType::BF16;
  void check() const;
};
void invoke(const MoeCombineKParams& p, cudaStream_t s);

}  // namespace kiln::cuda
