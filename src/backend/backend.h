// Backend: the fixed op set the forward pass is written over. A backend (cpu, cuda) implements ops, not models.
// Each op takes one params struct. Tensors passed to ops live in the backend's memory (see alloc/upload).
// Activations are in the backend's compute dtype (cpu: F32; cuda: F16/BF16); logits are always F32.
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend_config.h"
#include "backend/sampling_math.h"
#include "core/error.h"
#include "core/tensor.h"
#include "model/config.h"

namespace kiln {

// Per-step metadata for attention over the paged KV cache, resident in backend memory.
// A step packs T tokens from S sequences; sequence s owns tokens [seq_offsets[s], seq_offsets[s+1]).
struct StepMeta {
  int32_t num_tokens = 0;      // T
  int32_t num_seqs = 0;        // S
  int32_t max_blocks_per_seq = 0;
  int32_t max_new_tokens = 0;  // max over s of seq_offsets[s+1] - seq_offsets[s]
  int32_t max_context = 0;     // max over s of num_cached[s] + new tokens
  Tensor positions;            // I32 [T]      position of each token (num_cached + index within the chunk)
  Tensor token_seq;            // I32 [T]      sequence index of each token
  Tensor seq_offsets;          // I32 [S + 1]
  Tensor num_cached;           // I32 [S]      tokens already in the cache before this step
  Tensor block_tables;         // I32 [S, max_blocks_per_seq]
  Tensor slot_mapping;         // I32 [T]      cache slot (block * tokens_per_block + offset) each token writes
};

// KV cache pool: [num_layers, num_blocks, 2 (k, v), num_kv_heads, tokens_per_block, head_dim] of `dtype`: the
// compute dtype, or F8_E4M3 / I8 for a quantized cache (kv_cache_quant_algo FP8 / INT8), whose values are
// dequantized as q * scales[layer, 0 (k) or 1 (v)] and written as q = quantize(x / scale) with the rounding of
// src/core/quant_math.h (the cpu backend reads and writes one; cuda refuses it).
struct KvCacheDesc {
  Tensor pool;
  DType dtype = DType::F32;  // pool.dtype
  Tensor scales;             // F32 [num_layers, 2] for a quantized cache; empty otherwise
  int64_t num_layers = 0, num_blocks = 0, num_kv_heads = 0, tokens_per_block = 0, head_dim = 0;
  int64_t layer_stride() const { return num_blocks * 2 * num_kv_heads * tokens_per_block * head_dim; }
};

struct EmbeddingParams {
  Tensor ids;        // I32 [T]
  Tensor table;      // [V, H]
  Tensor positions;  // I32 [T]; used with pos_table
  Tensor pos_table;  // [P, H] learned positions, or empty
  Tensor out;        // [T, H]
};

// residual += add (when add is not empty); out = norm(residual) * weight (+ bias).
struct NormParams {
  NormType type = NormType::RMSNorm;
  double eps = 1e-6;
  Tensor add;       // [T, H] or empty
  Tensor residual;  // [T, H] in/out
  Tensor weight;    // [H]
  Tensor bias;      // [H] or empty
  Tensor out;       // [T, H]
};

// out = x @ weight^T (+ bias). weight is [N, K] as stored by the engine.
// A quantized weight (quant.quantized(); src/model/weights.h has the formats and the formula) keeps its data in
// `weight` (F8_E4M3 or I8 [N, K], I4X2 [N, K / 2]) and its parameters beside it. The cpu backend runs every
// scheme (src/backend/cpu/quant_linear.h has the arithmetic); cuda has no quantized GEMM yet and refuses one.
struct LinearParams {
  Tensor x;       // [T, K]
  Tensor weight;  // [N, K] (float or quantized data)
  Tensor bias;    // [N] or empty
  Tensor out;     // [T, N]
  int gemm_algo = -1;  // tactic chosen at build time (cuda); -1: backend default
  QuantScheme quant = {};       // granularity None: a float weight, the tensors below empty
  Tensor weight_scale = {};     // F32 [1] | [N] | [N, K / group_size]
  Tensor weight_zero = {};      // I8, weight_scale's shape, or empty
  Tensor input_scale = {};      // F32 [1] (static activation scale) or empty
  Tensor pre_quant_scale = {};  // F32 [K] or empty
};

// In place on qkv [T, (nh + 2 nkv) * hd]: optional per-head RMSNorm of q and k (Qwen3), RoPE on q and k,
// then k and v written into the cache at meta.slot_mapping for `layer`.
struct RopeKvParams {
  Tensor qkv;
  Tensor q_norm, k_norm;  // [hd] or empty
  double qk_norm_eps = 1e-6;
  bool apply_rope = true;
  RopeConfig rope;
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  const StepMeta* meta = nullptr;
  KvCacheDesc cache;
  int64_t layer = 0;
};

// Causal attention of each new token over its sequence's cached keys (context and generation alike).
struct AttentionParams {
  Tensor qkv;  // [T, (nh + 2 nkv) * hd], after RopeKv (q read from here; k, v from the cache)
  Tensor out;  // [T, nh * hd]
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int64_t sliding_window = 0;  // 0: none; else key positions p - window < k <= p
  float scale = 1.0f;
  const StepMeta* meta = nullptr;
  KvCacheDesc cache;
  int64_t layer = 0;
};

enum class ActKind { SiluGated, GeluTanh };
// SiluGated: in [T, 2I] (gate | up) -> out [T, I] = silu(gate) * up. GeluTanh: in [T, I] -> out [T, I].
struct ActivationParams {
  ActKind kind = ActKind::SiluGated;
  Tensor in, out;
};

// Mixtral-style MoE FFN: router logits -> softmax -> top-k -> renormalize -> sum_k w_k * expert_k(x).
// A quantized MoE weight's parameters (src/model/weights.h, lead dimension [E]); granularity None and empty tensors
// for float experts.
struct ExpertQuant {
  QuantScheme quant;
  Tensor weight_scale, weight_zero, input_scale, pre_quant_scale;
};

struct MoeParams {
  Tensor x;        // [T, H]
  Tensor router;   // [E, H]
  Tensor gate_up;  // [E, 2I, H] (float or quantized data)
  Tensor down;     // [E, H, I] (float or quantized data)
  int64_t top_k = 2;
  Tensor out;      // [T, H]
  ExpertQuant gate_up_quant = {}, down_quant = {};
};

// out[r] = x[rows[r]]
struct GatherRowsParams {
  Tensor x;     // [T, H]
  Tensor rows;  // I32 [R]
  Tensor out;   // [R, H]
};

// Greedy choice on the device: out[r] = argmax over v of logits[r, v] (the lowest index among equal maxima).
struct ArgmaxParams {
  Tensor logits;  // F32 [R, V]
  Tensor out;     // I32 [R]
};

// Token choice on the device that holds the logits, per row r (src/backend/sampling_math.h holds the row
// parameters and the math both backends share): a private copy of logits row rows[r].logits_row with the
// penalties of the row's penalty list and -inf on its banned ids, then the first argmax (temperature <= 0;
// log_prob = log_softmax at the id, when wanted) or temperature -> top-k -> top-p -> min-p -> a draw. Kept sets:
// tokens in (logit desc, id asc) order; top-k keeps the first k, top-p each token while the mass before it is
// below top_p times the top-k mass, min-p those whose weight exp((l - max) / T) is at least min_p (the first
// always). The draw walks the kept tokens in id order and takes the first whose cumulative weight exceeds
// u * Z, u = seeded_uniform(seed, stream, counter), Z the kept weight; log_prob = log(w / Z). Weights in double.
// `logits` is not modified. A row where every logit is -inf gets id kNoToken; one whose parameters point
// outside the logits or the lists gets kBadRow (log_prob 0 for both).
struct SampleParams {
  Tensor logits;     // F32 [L, V]
  Tensor rows;       // U8 [R * sizeof(SampleRowParams)]: SampleRowParams [R]
  Tensor penalties;  // I32 [N, 2]: PenaltyEntry (id, count in the output), each id once per row; may be empty
  Tensor bans;       // I32 [M]; may be empty
  Tensor ids;        // I32 [R] out
  Tensor log_probs;  // F32 [R] out
};

// Beam-search candidates per row r: log_softmax of logits row rows[r].logits_row, then the row's penalties and
// bans applied to the log-probs (transformers' order), then the k best (value desc, ties: lower id first).
struct TopLogProbsParams {
  Tensor logits;     // F32 [L, V]
  Tensor rows;       // U8 [R * sizeof(SampleRowParams)] (only the penalty/ban ranges and logits_row are read)
  Tensor penalties;  // I32 [N, 2]; may be empty
  Tensor bans;       // I32 [M]; may be empty
  int64_t k = 1;     // 1 <= k <= min(V, kMaxTopLogProbs)
  Tensor ids;        // I32 [R, k] out; every id kBadRow for a row with bad parameters
  Tensor values;     // F32 [R, k] out
};

// The checks both backends make on sample / top_log_probs tensors (kiln::Error naming what is wrong).
inline void check_sample_tensors(const char* op, const Tensor& logits, const Tensor& rows, const Tensor& penalties,
                                 const Tensor& bans, int64_t R) {
  if (logits.dtype != DType::F32 || logits.shape.size() != 2 || logits.empty())
    fail("{}: logits must be F32 [L, V], not {}", op, logits.shape_str());
  if (rows.nbytes() < size_t(R) * sizeof(SampleRowParams))
    fail("{}: {} bytes of row parameters for {} rows of {} bytes", op, rows.nbytes(), R, sizeof(SampleRowParams));
  if (!penalties.empty() && (penalties.dtype != DType::I32 || penalties.numel() % 2 != 0))
    fail("{}: the penalty list must be I32 [N, 2], not {}", op, penalties.shape_str());
  if (!bans.empty() && bans.dtype != DType::I32) fail("{}: the ban list must be I32", op);
}

// A recorded step (a CUDA graph on the cuda backend): replays the device work of the ops issued while it was
// recorded, on the same buffers. Buffer contents may change between replays; buffer addresses may not.
class StepGraph {
 public:
  virtual ~StepGraph() = default;
  virtual void replay() = 0;
};

struct StepOps;               // backend/step_ops.h
enum class Fusion : uint8_t;  // backend/step_ops.h

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual DType compute_dtype() const = 0;

  // Memory. alloc returns uninitialized memory owned by the tensor.
  virtual Tensor alloc(DType dtype, std::vector<int64_t> shape) = 0;
  virtual void upload(Tensor& dst, const void* src, size_t bytes) = 0;
  // Several small uploads at once (a step's metadata). A backend may do them as one operation; by default, one
  // upload each. Every source must stay valid until the call returns, as for upload.
  struct Upload {
    Tensor* dst;
    const void* src;
    size_t bytes;
  };
  virtual void upload_many(const std::vector<Upload>& items) {
    for (const Upload& u : items) upload(*u.dst, u.src, u.bytes);
  }
  virtual void download(void* dst, const Tensor& src, size_t bytes) = 0;
  virtual void fill_zero(Tensor& t) = 0;
  virtual void synchronize() = 0;
  virtual size_t free_memory() const = 0;  // bytes available for the KV cache

  // A weight from an engine file, converted to the layout and dtype this backend computes with.
  virtual Tensor load_weight(const WeightView& v) = 0;

  // Ops.
  virtual void embedding(const EmbeddingParams& p) = 0;
  virtual void norm(const NormParams& p) = 0;
  virtual void linear(const LinearParams& p) = 0;
  virtual void rope_kv(const RopeKvParams& p) = 0;
  virtual void attention(const AttentionParams& p) = 0;
  virtual void activation(const ActivationParams& p) = 0;
  virtual void moe(const MoeParams& p) = 0;
  virtual void gather_rows(const GatherRowsParams& p) = 0;
  // KV blocks: for each (src, dst) in order, block dst <- block src in every layer, k and v (copy-on-write of
  // blocks shared between beams). Block ids are checked against the pool.
  virtual void copy_kv_blocks(const KvCacheDesc& cache, const std::vector<std::pair<int32_t, int32_t>>& src_dst) = 0;
  virtual void argmax(const ArgmaxParams& p) = 0;
  virtual void sample(const SampleParams& p) = 0;
  virtual void top_log_probs(const TopLogProbsParams& p) = 0;

  // A step's ops (backend/step_ops.h), in order, each group joined by fusions run as one kernel where the backend
  // fuses them. The default runs op by op (a fusion never changes what the ops compute).
  virtual void run(const StepOps& ops);
  // Whether this backend runs ops.ops[i] fused with ops.ops[i + 1] as `f` (the rule of fusion_plan.h that
  // proposes it has checked the data flow; the fusions of ops before i are decided). Default: none.
  virtual bool can_fuse(const StepOps& ops, size_t i, Fusion f) const { return false; }

  // Called by Engine::load before any weight is loaded: the backend takes the engine's compute dtype, limits
  // and tactics, and refuses (kiln::Error) an engine it cannot run, e.g. one built for another GPU.
  virtual void configure(const BackendConfig& config) {}
  // Makes the calling thread use this backend's device (cuda: the rank's device ordinal). A thread other than the
  // one that made the backend calls it before its first op.
  virtual void bind_thread() {}
  // A weight of uniform pseudo-random values in [-scale, scale), a pure function of (element index, seed):
  // every backend produces the same values up to its dtype's rounding. Synthetic engines are made of these.
  virtual Tensor random_weight(std::vector<int64_t> shape, uint64_t seed, float scale) = 0;

  // Asynchronous copy to the host, ordered after the work issued so far: returns a ticket; wait_download waits
  // for that copy and writes its bytes to dst (each ticket once). The default copies synchronously.
  virtual uint64_t download_async(const Tensor& src, size_t bytes) {
    std::vector<uint8_t> b(bytes);
    download(b.data(), src, bytes);
    downloads_[next_ticket_] = std::move(b);
    return next_ticket_++;
  }
  virtual void wait_download(uint64_t ticket, void* dst) {
    auto it = downloads_.find(ticket);
    if (it == downloads_.end()) fail("wait_download: unknown ticket {}", ticket);
    std::copy(it->second.begin(), it->second.end(), static_cast<uint8_t*>(dst));
    downloads_.erase(it);
  }

  // Step graphs: ops issued between begin_capture() and end_capture() are recorded instead of run; the graph
  // returned has not run yet (call replay()). Only where supports_step_graphs() is true.
  virtual bool supports_step_graphs() const { return false; }
  virtual void begin_capture() { fail("backend {} does not record step graphs", name()); }
  virtual std::unique_ptr<StepGraph> end_capture() { fail("backend {} does not record step graphs", name()); }

 private:
  std::map<uint64_t, std::vector<uint8_t>> downloads_;  // the default download_async's copies
  uint64_t next_ticket_ = 1;
};

// The shared definition of random_weight's values: element i of seed s, uniform in [-1, 1).
inline float random_uniform(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;  // splitmix64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return float(int64_t(z >> 40) - (int64_t(1) << 23)) * (1.0f / float(1 << 23));
}

}  // namespace kiln
