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

#include "build/engine_format.h"
#include "core/error.h"
#include "core/tensor.h"
#include "io/safetensors.h"
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

// KV cache pool: [num_layers, num_blocks, 2 (k, v), num_kv_heads, tokens_per_block, head_dim].
struct KvCacheDesc {
  Tensor pool;
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
struct LinearParams {
  Tensor x;       // [T, K]
  Tensor weight;  // [N, K]
  Tensor bias;    // [N] or empty
  Tensor out;     // [T, N]
  int gemm_algo = -1;  // tactic chosen at build time (cuda); -1: backend default
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
struct MoeParams {
  Tensor x;        // [T, H]
  Tensor router;   // [E, H]
  Tensor gate_up;  // [E, 2I, H]
  Tensor down;     // [E, H, I]
  int64_t top_k = 2;
  Tensor out;      // [T, H]
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

// A recorded step (a CUDA graph on the cuda backend): replays the device work of the ops issued while it was
// recorded, on the same buffers. Buffer contents may change between replays; buffer addresses may not.
class StepGraph {
 public:
  virtual ~StepGraph() = default;
  virtual void replay() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual DType compute_dtype() const = 0;

  // Memory. alloc returns uninitialized memory owned by the tensor.
  virtual Tensor alloc(DType dtype, std::vector<int64_t> shape) = 0;
  virtual void upload(Tensor& dst, const void* src, size_t bytes) = 0;
  virtual void download(void* dst, const Tensor& src, size_t bytes) = 0;
  virtual void fill_zero(Tensor& t) = 0;
  virtual void synchronize() = 0;
  virtual size_t free_memory() const = 0;  // bytes available for the KV cache

  // A weight from an engine file, converted to the layout and dtype this backend computes with.
  virtual Tensor load_weight(const TensorView& v) = 0;

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

  // Called by Engine::load before any weight is loaded: the backend takes the engine's compute dtype, limits
  // and tactics, and refuses (kiln::Error) an engine it cannot run, e.g. one built for another GPU.
  virtual void configure(const EngineInfo& info) {}
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

// target: "cpu" or "cuda".
std::unique_ptr<Backend> make_backend(const std::string& target, int num_threads = 0);

}  // namespace kiln
