// CudaBackend: device memory, uploads through pinned staging, the op set over the kernels of kernels.h and the
// GEMMs of gemm.h (decode-step peephole fusions: see flush() and docs/ARCHITECTURE.md), and step graphs (CUDA stream
// capture). One stream; every op is asynchronous; download() and
// synchronize() are the only points where the host waits (and where kernel-detected bad input is reported).
#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "backend/cuda/batch_invariant.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_memory.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/moe_runner.h"
#include "backend/cuda/transfers.h"
#include "backend/step_ops.h"
#include "core/error.h"
#include "model/rope.h"

namespace kiln {

using cuda::check_cuda;

namespace {

class CudaStepGraph final : public StepGraph {
 public:
  CudaStepGraph(cudaGraphExec_t exec, cudaStream_t s) : exec_(exec), stream_(s) {}
  ~CudaStepGraph() override { cudaGraphExecDestroy(exec_); }
  void replay() override { KILN_CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
};


class CudaBackend final : public Backend {
 public:
  CudaBackend(DType compute, int device) : dt_(compute), device_(device) {
    if (compute != DType::F16 && compute != DType::BF16)
      fail("cuda backend: compute dtype must be float16 or bfloat16, not {}", dtype_name(compute));
    const int n = cuda_device_count();
    if (n == 0) fail("no CUDA GPU is available on this machine (a cuda engine needs one; build a cpu engine instead)");
    if (device < 0 || device >= n) fail("CUDA device {}: this machine has {} (ordinals 0 to {})", device, n, n - 1);
    KILN_CUDA_CHECK(cudaSetDevice(device_));
    KILN_CUDA_CHECK(cudaGetDeviceProperties(&props_, device_));
    KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    gemm_ = std::make_unique<cuda::GemmRunner>(stream_);
    KILN_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&error_host_), sizeof(int), cudaHostAllocMapped));
    *error_host_ = 0;
    KILN_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&error_dev_), error_host_, 0));
    transfers_ = std::make_unique<cuda::Transfers>(stream_);
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    gemm_.reset();
    transfers_.reset();
    cudaFreeHost(error_host_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }
  DType compute_dtype() const override { return dt_; }
  void bind_thread() override { KILN_CUDA_CHECK(cudaSetDevice(device_)); }

  void configure(const BackendConfig& info) override {
    if (info.target != "cuda") fail("cuda backend: engine target is '{}'", info.target);
    const std::string arch = fmt::format("sm_{}{}", props_.major, props_.minor);
    if (info.gpu_arch != arch)
      fail("this engine was built for {} but this GPU ({}) is {}: rebuild the engine on this GPU",
           info.gpu_arch.empty() ? "no GPU architecture" : info.gpu_arch, props_.name, arch);
    if (info.compute_dtype != DType::F16 && info.compute_dtype != DType::BF16)
      fail("cuda engine: compute dtype {} is not float16 or bfloat16", dtype_name(info.compute_dtype));
    dt_ = info.compute_dtype;
    max_seq_len_ = info.limits.max_seq_len;
    gemm_->set_tactics(info.tactics);
    gemm_->set_invariant(invariant_ = info.batch_invariant);  // batch_invariant.h: what changes
    const ModelConfig& m = info.model;
    if (m.position == PositionType::Rope) {  // frequencies and the cos/sin table, made now (outside any graph)
      const float* f = inv_freq(m.rope, m.head_dim);
      rope_table_ = alloc(DType::F32, {max_seq_len_, m.head_dim});
      cuda::RopeTableKParams t;
      t.inv_freq = f;
      t.out = rope_table_.ptr<float>();
      t.len = max_seq_len_;
      t.hd = m.head_dim;
      cuda::invoke(t, stream_);
      rope_table_key_ = rope_key(m.rope, m.head_dim);
    }
    // Workspaces sized for the limits now, so that recording a step graph never allocates.
    const int64_t max_seqs = info.limits.max_batch_size * info.limits.max_beam_width;
    int64_t most = 0;
    for (int64_t s = 1; s <= max_seqs; ++s) most = std::max(most, s * decode_splits(s, m.num_kv_heads));
    attn_o_.get<float>(size_t(most * m.num_heads * m.head_dim), false, "attention partials");
    attn_lse_.get<float>(size_t(most * m.num_heads), false, "attention partials");
    attn_counters_.get<int>(size_t(max_seqs * m.num_kv_heads), false, "attention counters");
    const int ab = cuda::ArgmaxKParams::blocks_for(m.vocab_size);
    argmax_val_.get<float>(size_t(max_seqs * ab), false, "argmax partials");
    argmax_idx_.get<int32_t>(size_t(max_seqs * ab), false, "argmax partials");
    argmax_counters_.get<int>(size_t(max_seqs), false, "argmax counters");
    argmax_keys_.get<unsigned long long>(size_t(cuda::kGemvMaxRows + 1), false, "argmax keys");
    if (invariant_) inv_attn_.configure(m, max_seq_len_, max_seqs);
    if (m.num_experts > 0)
      moe_.reserve(info.limits.max_num_tokens, m.hidden_size, m.intermediate_size, m.num_experts, m.experts_top_k, false);
  }

  // ---- memory ----
  Tensor alloc(DType dtype, std::vector<int64_t> shape) override {
    if (capturing_) fail("cuda backend: alloc while a step graph is recorded");
    Tensor t;
    t.dtype = dtype;
    t.shape = std::move(shape);
    const size_t cls = BlockCache::size_class(t.nbytes());
    void* p = blocks_->take(cls);
    if (!p) {
      cudaError_t e = cudaMalloc(&p, cls);
      if (e != cudaSuccess) {  // give the cached blocks back and try once more
        cudaGetLastError();
        blocks_->release_all();
        e = cudaMalloc(&p, cls);
      }
      if (e != cudaSuccess) {
        cudaGetLastError();
        fail("cuda backend: out of GPU memory allocating {} bytes ({})", cls, cudaGetErrorString(e));
      }
    }
    // A freed tensor's block returns to the cache; work already queued on it runs before any reuse (one stream).
    t.owner = std::shared_ptr<void>(p, [cache = blocks_, cls](void* q) { cache->give(q, cls); });
    t.data = p;
    return t;
  }

  void upload(Tensor& dst, const void* src, size_t bytes) override {
    flush();
    if (capturing_) fail("cuda backend: upload while a step graph is recorded");
    check_upload(dst, bytes);
    if (bytes <= cuda::Transfers::kStageSlot) {
      transfers_->upload(dst.data, src, bytes);  // through a pinned slot: the host does not wait for the device
    } else {
      // On the stream, not cudaMemcpy: that runs on the legacy default stream, which this non-blocking stream
      // does not wait for, and from pageable memory it may return before the data has landed.
      KILN_CUDA_CHECK(cudaMemcpyAsync(dst.data, src, bytes, cudaMemcpyHostToDevice, stream_));
      KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }

  // A step's metadata: packed into one pinned slot and copied by one kernel reading it through the slot's device
  // mapping, instead of a copy-engine transfer per array (each a few microseconds of the stream between steps).
  // A download queued just before (the previous step's choice) is copied by the same kernel (transfers.h).
  void upload_many(const std::vector<Upload>& items) override {
    std::vector<cuda::Transfers::Item> t;
    for (const Upload& u : items) {
      check_upload(*u.dst, u.bytes);
      t.push_back({u.dst->data, u.src, u.bytes});
    }
    if (capturing_) fail("cuda backend: upload while a step graph is recorded");
    if (!transfers_->upload_many(t)) Backend::upload_many(items);
  }

  void download(void* dst, const Tensor& src, size_t bytes) override {
    flush();
    if (capturing_) fail("cuda backend: download while a step graph is recorded");
    if (bytes > src.nbytes()) fail("cuda download: {} bytes from a tensor of {}", bytes, src.nbytes());
    KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src.data, bytes, cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }

  // Pinned slots with an event each: the copy is queued (or deferred into the next upload_many), wait_download
  // waits for its event only.
  uint64_t download_async(const Tensor& src, size_t bytes) override {
    flush();
    if (capturing_) fail("cuda backend: download while a step graph is recorded");
    if (bytes > src.nbytes()) fail("cuda download: {} bytes from a tensor of {}", bytes, src.nbytes());
    return transfers_->download_async(src.data, bytes);
  }
  void wait_download(uint64_t ticket, void* dst) override {
    transfers_->wait_download(ticket, dst);
    check_error_flag();
  }

  void fill_zero(Tensor& t) override {
    flush();
    KILN_CUDA_CHECK(cudaMemsetAsync(t.data, 0, t.nbytes(), stream_));
  }

  void synchronize() override {
    flush();
    KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    check_error_flag();
  }
  void check_error_flag() {
    const int err = *error_host_;
    if (err) {
      *error_host_ = 0;
      fail("{}", err == 1 ? "a token id is outside the vocabulary" : "a position is past the model's learned positions");
    }
  }

  size_t free_memory() const override {
    size_t free = 0, total = 0;
    KILN_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    free += blocks_->cached();  // cached blocks are reusable
    const size_t reserve = size_t(1) << 30;  // cuBLASLt, graphs, workspaces
    return free > reserve ? free - reserve : 0;
  }

  Tensor load_weight(const WeightView& v) override {
    Tensor t = alloc(dt_, v.shape);
    if (v.dtype == dt_) {
      upload(t, v.data, t.nbytes());
    } else {
      if (!is_float(v.dtype)) fail("cuda backend: weight of dtype {} is not a float", dtype_name(v.dtype));
      std::vector<float> f(static_cast<size_t>(v.numel()));
      convert_to_f32(v.dtype, v.data, f.data(), f.size());
      std::vector<uint16_t> h(f.size());
      convert_from_f32(f.data(), dt_, h.data(), f.size());
      upload(t, h.data(), t.nbytes());
    }
    return t;
  }

  Tensor random_weight(std::vector<int64_t> shape, uint64_t seed, float scale) override {
    flush();
    Tensor t = alloc(dt_, std::move(shape));
    cuda::RandomKParams p;
    p.out = t.data;
    p.n = t.numel();
    p.seed = seed;
    p.scale = scale;
    p.dt = dt_;
    cuda::invoke(p, stream_);
    return t;
  }

  // ---- ops ----
  void embedding(const EmbeddingParams& p) override {
    flush();
    expect(p.table, "embedding table");
    expect(p.out, "embedding out");
    cuda::EmbeddingKParams k;
    k.ids = p.ids.ptr<int32_t>();
    k.table = p.table.data;
    k.positions = p.positions.ptr<int32_t>();
    k.pos_table = p.pos_table.empty() ? nullptr : p.pos_table.data;
    k.out = p.out.data;
    k.T = p.ids.dim(0);
    k.H = p.table.dim(1);
    k.V = p.table.dim(0);
    k.P = p.pos_table.empty() ? 0 : p.pos_table.dim(0);
    k.error = error_dev_;
    k.dt = dt_;
    cuda::invoke(k, stream_);
  }

  void norm(const NormParams& p) override {
    flush();
    expect(p.residual, "norm residual");
    expect(p.out, "norm out");
    run_norm(p);
  }

  void run_norm(const NormParams& p) {
    cuda::NormKParams k;
    k.layer_norm = p.type == NormType::LayerNorm;
    k.eps = float(p.eps);
    k.add = p.add.empty() ? nullptr : p.add.data;
    k.residual = p.residual.data;
    k.weight = p.weight.data;
    k.bias = p.bias.empty() ? nullptr : p.bias.data;
    k.out = p.out.data;
    k.T = p.residual.dim(0);
    k.H = p.residual.dim(1);
    k.dt = dt_;
    cuda::invoke(k, stream_);
  }

  void linear(const LinearParams& p) override {
    flush();
    const cuda::GemmArgs a = gemm_args(p);
    if (gemv_tactic(a)) {
      run_gemv(GemvJob{a, gemm_->tactic(a).gemv_unroll});
    } else {
      gemm_->run(a);
    }
  }

  cuda::GemmArgs gemm_args(const LinearParams& p) const {
    const int64_t T = p.x.dim(0), K = p.x.dim(1), N = p.weight.dim(0);
    if (p.weight.dim(1) != K) fail("linear: x is {} but weight is {}", p.x.shape_str(), p.weight.shape_str());
    if (p.out.dim(0) != T || p.out.dim(1) != N) fail("linear: out is {}, expected [{}, {}]", p.out.shape_str(), T, N);
    if (p.quant.quantized())
      fail("cuda backend: linear over {} weights: the cuda target has no quantized GEMM kernel yet",
           dtype_name(p.weight.dtype));
    expect(p.x, "linear x");
    expect(p.weight, "linear weight");
    if (p.out.dtype != dt_ && p.out.dtype != DType::F32)
      fail("linear: out must be {} or float32, not {}", dtype_name(dt_), dtype_name(p.out.dtype));
    cuda::GemmArgs a;
    a.x = p.x.data;
    a.w = p.weight.data;
    a.bias = p.bias.empty() ? nullptr : p.bias.data;
    a.out = p.out.data;
    a.M = T;
    a.N = N;
    a.K = K;
    a.dt = dt_;
    a.out_dt = p.out.dtype;
    return a;
  }
  // The build chose kiln's GEMV for this shape and row count.
  bool gemv_tactic(const cuda::GemmArgs& a) const {
    return a.M <= cuda::kGemvMaxRows && gemm_->tactic(a).kind == cuda::GemmTactic::Gemv;
  }

  void rope_kv(const RopeKvParams& p) override {
    flush();
    run_rope(p);
  }

  // rope_kv of a decode-only step can be done by the split-KV decode attention kernel that follows it.
  bool rope_fuses_into_attention(const RopeKvParams& p) const {
    const StepMeta& m = *p.meta;
    const int64_t hd = p.head_dim;
    return !invariant_ && m.max_new_tokens == 1 && p.apply_rope && p.q_norm.empty() && p.k_norm.empty() &&
           (hd == 32 || hd == 64 || hd == 128 || hd == 256) && !decode_uses_mma(m, p.num_heads, p.num_kv_heads, hd) &&
           cuda::decode_attention_supported(p.num_heads, p.num_kv_heads);
  }
  int64_t max_ctx_for(const StepMeta& m) const { return max_seq_len_ > 0 ? max_seq_len_ : m.max_context; }
  bool decode_uses_mma(const StepMeta& m, int64_t nh, int64_t nkv, int64_t hd) const {
    return decode_splits(m.num_seqs, nkv, max_ctx_for(m)) == 1 && cuda::decode_mma_attention_supported(nh, nkv, hd);
  }

  void run_rope(const RopeKvParams& p) {
    const StepMeta& m = *p.meta;
    expect(p.qkv, "rope_kv qkv");
    expect_cache(p.cache);
    cuda::RopeKvKParams k;
    k.qkv = p.qkv.data;
    k.q_norm = p.q_norm.empty() ? nullptr : p.q_norm.data;
    k.k_norm = p.k_norm.empty() ? nullptr : p.k_norm.data;
    k.qk_norm_eps = float(p.qk_norm_eps);
    k.inv_freq = p.apply_rope ? inv_freq(p.rope, p.head_dim) : nullptr;
    if (p.apply_rope && !rope_table_.empty() && rope_key(p.rope, p.head_dim) == rope_table_key_) {
      k.cos_sin = rope_table_.ptr<float>();
      k.table_len = rope_table_.dim(0);
    }
    k.positions = m.positions.ptr<int32_t>();
    k.slots = m.slot_mapping.ptr<int32_t>();
    k.cache = layer_ptr(p.cache, p.layer);
    k.T = m.num_tokens;
    k.nh = p.num_heads;
    k.nkv = p.num_kv_heads;
    k.hd = p.head_dim;
    k.tpb = p.cache.tokens_per_block;
    k.num_blocks = p.cache.num_blocks;
    k.dt = dt_;
    cuda::invoke(k, stream_);
  }

  void attention(const AttentionParams& p) override { run_attention(p, nullptr); }

  // The attention, with the rope_kv before it done by the decode kernel when `rope` is given (Fusion::RopeAttention).
  void run_attention(const AttentionParams& p, const RopeKvParams* rope) {
    flush();
    const StepMeta& m = *p.meta;
    expect_cache(p.cache);
    expect(p.qkv, "attention qkv");
    expect(p.out, "attention out");
    cuda::AttentionKParams k;
    k.qkv = p.qkv.data;
    k.out = p.out.data;
    k.cache = layer_ptr(p.cache, p.layer);
    k.seq_offsets = m.seq_offsets.ptr<int32_t>();
    k.num_cached = m.num_cached.ptr<int32_t>();
    k.block_tables = m.block_tables.ptr<int32_t>();
    k.T = m.num_tokens;
    k.S = m.num_seqs;
    k.nh = p.num_heads;
    k.nkv = p.num_kv_heads;
    k.hd = p.head_dim;
    k.tpb = p.cache.tokens_per_block;
    k.max_blocks = m.max_blocks_per_seq;
    k.window = p.sliding_window;
    k.max_new_tokens = m.max_new_tokens;
    k.scale = p.scale;
    k.dt = dt_;
    if (invariant_) return inv_attn_.run(k, m.token_seq.ptr<int32_t>(), capturing_, stream_);  // every row, one kernel
    // Sequences with one new token go to the split-KV decode kernel, prompt chunks to the context kernel; a
    // mixed step runs both (each skips the other's sequences).
    // Single-token sequences: split-KV when the batch is too small to fill the GPU, else the tensor-core kernel.
    const int splits = int(decode_splits(k.S, k.nkv, max_ctx_for(m)));
    const bool mma_ok = splits == 1 && cuda::decode_mma_attention_supported(k.nh, k.nkv, k.hd);
    const bool decode_ok = mma_ok || cuda::decode_attention_supported(k.nh, k.nkv);
    if (rope) {
      if (mma_ok || m.max_new_tokens != 1) {
        run_rope(*rope);  // cannot happen (rope_fuses_into_attention checked the same), but stay correct
      } else {
        k.fuse_rope = true;
        k.rope_inv_freq = inv_freq(rope->rope, rope->head_dim);
        if (!rope_table_.empty() && rope_key(rope->rope, rope->head_dim) == rope_table_key_) {
          k.rope_cos_sin = rope_table_.ptr<float>();
          k.rope_table_len = rope_table_.dim(0);
        }
        k.slots = m.slot_mapping.ptr<int32_t>();
      }
    }
    if (decode_ok && (m.max_new_tokens == 1 || m.num_seqs > 1)) {
      k.num_splits = splits;
      after_decode_attention_ = m.max_new_tokens == 1;
      if (mma_ok) {
        cuda::invoke_decode_mma_attention(k, stream_);
      } else if (k.num_splits > 1) {
        k.part_o = attn_o_.get<float>(size_t(k.S * k.nh * k.num_splits * k.hd), capturing_, "attention partials");
        k.part_lse = attn_lse_.get<float>(size_t(k.S * k.nh * k.num_splits), capturing_, "attention partials");
        k.counters = attn_counters_.get<int>(size_t(k.S * k.nkv), capturing_, "attention counters");
        cuda::invoke_decode_attention(k, stream_);
      } else {
        cuda::invoke_decode_attention(k, stream_);
      }
    }
    if (m.max_new_tokens > 1 || !decode_ok) {
      k.skip_single = decode_ok;
      cuda::invoke_context_attention(k, stream_);
    }
  }

  void activation(const ActivationParams& p) override {
    flush();
    expect(p.in, "activation in");
    expect(p.out, "activation out");
    cuda::ActKParams k;
    k.gelu = p.kind == ActKind::GeluTanh;
    k.in = p.in.data;
    k.out = p.out.data;
    k.T = p.out.dim(0);
    k.I = p.out.dim(1);
    k.dt = dt_;
    cuda::invoke(k, stream_);
  }

  void moe(const MoeParams& p) override {
    flush();
    expect(p.x, "moe x");
    expect(p.out, "moe out");
    moe_.run(p, dt_, *gemm_, capturing_, stream_);
  }

  void gather_rows(const GatherRowsParams& p) override {
    flush();
    cuda::GatherKParams k;
    k.x = p.x.data;
    k.rows = p.rows.ptr<int32_t>();
    k.out = p.out.data;
    k.R = p.rows.dim(0);
    k.H = p.x.dim(1);
    k.T = p.x.dim(0);
    k.dt = p.x.dtype;
    if (p.out.dtype != p.x.dtype) fail("gather_rows: x and out dtypes differ");
    cuda::invoke(k, stream_);
  }

  void argmax(const ArgmaxParams& p) override {
    flush();
    if (p.logits.dtype != DType::F32 || p.out.dtype != DType::I32) fail("argmax: needs F32 logits and an I32 output");
    cuda::ArgmaxKParams k;
    k.logits = p.logits.ptr<float>();
    k.out = p.out.ptr<int32_t>();
    k.R = p.logits.dim(0);
    k.V = p.logits.dim(1);
    k.blocks = cuda::ArgmaxKParams::blocks_for(k.V);
    if (k.blocks > 1) {
      k.part_val = argmax_val_.get<float>(size_t(k.R * k.blocks), capturing_, "argmax partials");
      k.part_idx = argmax_idx_.get<int32_t>(size_t(k.R * k.blocks), capturing_, "argmax partials");
      k.counters = argmax_counters_.get<int>(size_t(k.R), capturing_, "argmax counters");
    }
    cuda::invoke(k, stream_);
  }

  // Sampling (sampling.cu): the logits stay here; a workspace [R, V] holds each row's private copy (it returns to
  // the cache once the kernel is queued: one stream).
  void sample(const SampleParams& p) override { run_sampling(p, cuda::invoke_sample); }
  void top_log_probs(const TopLogProbsParams& p) override { run_sampling(p, cuda::invoke_top_log_probs); }
  template <class P>
  void run_sampling(const P& p, void (*invoke)(const cuda::SampleKParams&, cudaStream_t)) {
    flush();
    cuda::SampleKParams k = cuda::sample_kparams(p);
    Tensor work = alloc(DType::F32, {k.R, k.V});
    k.work = work.ptr<float>();
    invoke(k, stream_);
  }

  void copy_kv_blocks(const KvCacheDesc& cache, const std::vector<std::pair<int32_t, int32_t>>& src_dst) override {
    flush();
    const size_t block =  // one layer's k and v of a block
        size_t(2 * cache.num_kv_heads * cache.tokens_per_block * cache.head_dim) * dtype_size(cache.pool.dtype);
    for (auto [src, dst] : src_dst) {
      if (src < 0 || src >= cache.num_blocks || dst < 0 || dst >= cache.num_blocks)
        fail("copy_kv_blocks: block {} -> {} outside the pool of {} blocks", src, dst, cache.num_blocks);
      for (int64_t l = 0; l < cache.num_layers; ++l) {
        char* base = static_cast<char*>(layer_ptr(cache, l));
        KILN_CUDA_CHECK(cudaMemcpyAsync(base + size_t(dst) * block, base + size_t(src) * block, block,
                                        cudaMemcpyDeviceToDevice, stream_));
      }
    }
  }

  // ---- step graphs ----
  bool supports_step_graphs() const override { return true; }
  void begin_capture() override {
    if (capturing_) fail("cuda backend: a step graph is already being recorded");
    flush();
    KILN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    capturing_ = true;
  }
  std::unique_ptr<StepGraph> end_capture() override {
    if (!capturing_) fail("cuda backend: end_capture without begin_capture");
    flush();
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    KILN_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    KILN_CUDA_CHECK(e);
    return std::make_unique<CudaStepGraph>(exec, stream_);
  }

  cudaStream_t stream() const { return stream_; }

 private:
  static void check_upload(const Tensor& dst, size_t bytes) {
    if (bytes > dst.nbytes()) fail("cuda upload: {} bytes into a tensor of {}", bytes, dst.nbytes());
  }
  void expect_cache(const KvCacheDesc& c) const {
    if (!is_float(c.pool.dtype))
      fail("cuda backend: a {} KV cache: the cuda target has no quantized KV-cache kernel yet",
           dtype_name(c.pool.dtype));
    expect(c.pool, "KV cache");
  }
  void expect(const Tensor& t, const char* what) const {
    if (t.dtype != dt_) fail("cuda backend: {} is {}, expected the compute dtype {}", what, dtype_name(t.dtype), dtype_name(dt_));
  }
  void* layer_ptr(const KvCacheDesc& c, int64_t layer) const {
    if (layer < 0 || layer >= c.num_layers) fail("KV cache: layer {} of {}", layer, c.num_layers);
    return static_cast<char*>(c.pool.data) + size_t(layer * c.layer_stride()) * dtype_size(c.pool.dtype);
  }
  // Split-KV factor of the decode kernel for S sequences: about two CTAs per SM, at most one split per 64
  // positions of the longest context the engine allows. A function of S only, once configured (graphs).
  int64_t decode_splits(int64_t S, int64_t nkv, int64_t max_ctx = 0) const {
    if (max_ctx <= 0) max_ctx = max_seq_len_ > 0 ? max_seq_len_ : 64;
    const int64_t cap = std::clamp<int64_t>(cuda::ceil_div(max_ctx, 64), 1, 64);
    return std::clamp<int64_t>(cuda::ceil_div(2 * props_.multiProcessorCount, S * nkv), 1, cap);
  }
  static std::string rope_key(const RopeConfig& r, int64_t hd) {
    return fmt::format("{}_{}_{}_{}_{}_{}_{}_{}", r.theta, int(r.scaling), r.factor, r.low_freq_factor,
                       r.high_freq_factor, r.original_max_position, int(r.freq_dtype), hd);
  }
  const float* inv_freq(const RopeConfig& r, int64_t hd) {
    const std::string key = rope_key(r, hd);
    auto it = inv_freq_.find(key);
    if (it != inv_freq_.end()) return static_cast<const float*>(it->second.data);
    if (capturing_) fail("cuda backend: RoPE frequencies first needed while a step graph is recorded");
    std::vector<float> f = rope_inv_freq(r, hd);
    Tensor t = alloc(DType::F32, {int64_t(f.size())});
    KILN_CUDA_CHECK(cudaMemcpyAsync(t.data, f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice, stream_));
    KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));  // f is freed on return
    inv_freq_[key] = t;
    return t.ptr<float>();
  }

  // A GEMV launch with what it fuses (step_ops.h): the norm before it as its prologue, and as its epilogue the
  // residual add of the norm after it, the SiLU-gated activation of its output, or the greedy choice over its
  // float32 logits. l2_next: the weights of the GEMV launched next, which it prefetches into L2.
  struct GemvJob {
    cuda::GemmArgs a;
    int unroll = 4;
    const void* norm_residual = nullptr;  // norm prologue
    const void* norm_weight = nullptr;
    float norm_eps = 0.f;
    void* residual = nullptr;  // residual epilogue
    void* out = nullptr;       // SiLU-gated: the activation's output (and gate_up the GEMV's own)
    void* gate_up = nullptr;
    int32_t* argmax_out = nullptr;  // a float32 GEMV (the lm_head): the greedy choice per row
    const void* l2_next = nullptr;
    int64_t l2_next_bytes = 0;
    bool l2_next_gated = false;
  };
  void run_gemv(const GemvJob& g) {
    cuda::GemvKParams k = cuda::gemv_params(g.a, g.unroll);
    k.norm_residual = g.norm_residual;
    k.norm_weight = g.norm_weight;
    k.norm_eps = g.norm_eps;
    k.residual = g.residual;
    k.argmax_out = g.argmax_out;
    k.argmax_keys = g.argmax_out ? argmax_keys_.get<unsigned long long>(size_t(cuda::kGemvMaxRows + 1), capturing_, "argmax keys")
                                 : nullptr;
    if (g.gate_up) {
      k.out = g.out;
      k.gate_up = g.gate_up;
      k.silu_gated = true;
    }
    k.l2_next = g.l2_next;
    k.l2_next_bytes = g.l2_next_bytes;
    k.l2_next_gated = g.l2_next_gated;
    k.l2_prefetch_bytes = after_decode_attention_ ? cuda::kGemvL2AfterAttention
                          : g.norm_residual       ? 0
                                                  : cuda::kGemvL2Rest;
    after_decode_attention_ = false;
    cuda::invoke(k, stream_);
  }

  // ---- the step's plan (step_ops.h): fused groups as one kernel ----
  bool can_fuse(const StepOps& plan, size_t i, Fusion f) const override {
    const auto& ops = plan.ops;
    auto gemv_linear = [&](size_t j, bool f32_ok) {
      const LinearParams* l = std::get_if<LinearParams>(&ops[j].params);
      if (!l || l->x.dtype != dt_ || l->weight.dtype != dt_ || l->x.dim(1) != l->weight.dim(1)) return false;
      const cuda::GemmArgs a = gemm_args(*l);
      return (f32_ok || a.out_dt == dt_) && gemv_tactic(a);
    };
    const bool prologue = i > 0 && ops[i - 1].next == Fusion::NormPrologue;
    switch (f) {
      case Fusion::ResidualAdd: {  // not with a norm prologue: the kernel reads the residual it would write
        const auto& n = std::get<NormParams>(ops[i + 1].params);
        return !prologue && gemv_linear(i, false) && n.residual.dtype == dt_ && n.residual.shape == n.add.shape;
      }
      case Fusion::NormPrologue: {
        const auto& n = std::get<NormParams>(ops[i].params);
        const auto& l = std::get<LinearParams>(ops[i + 1].params);
        return n.type == NormType::RMSNorm && n.bias.empty() && n.residual.dim(0) <= cuda::kGemvMaxRows &&
               gemv_linear(i + 1, true) &&
               size_t(l.x.dim(0) * l.x.dim(1)) * dtype_size(dt_) <= cuda::kGemvNormSmem;
      }
      case Fusion::SiluGate: {
        const auto& a = std::get<ActivationParams>(ops[i + 1].params);
        return gemv_linear(i, false) && a.out.dim(0) == a.in.dim(0) && a.out.dim(1) * 2 == a.in.dim(1);
      }
      case Fusion::RopeAttention: return rope_fuses_into_attention(std::get<RopeKvParams>(ops[i].params));
      case Fusion::Argmax: {
        const auto& a = std::get<ArgmaxParams>(ops[i + 1].params);
        return gemv_linear(i, true) && a.logits.dtype == DType::F32 && a.out.dim(0) == a.logits.dim(0);
      }
      case Fusion::None: return false;
    }
    return false;
  }

  void run(const StepOps& plan) override {
    const auto& ops = plan.ops;
    for (size_t i = 0; i < ops.size(); ++i) {
      const StepOp& op = ops[i];
      if (op.next == Fusion::NormPrologue) continue;  // computed by the linear after it
      if (const auto* l = std::get_if<LinearParams>(&op.params)) {
        i = run_linear(plan, i, *l);
      } else if (op.next == Fusion::RopeAttention) {
        run_attention(std::get<AttentionParams>(ops[i + 1].params), &std::get<RopeKvParams>(op.params));
        ++i;
      } else if (const auto* n = std::get_if<NormParams>(&op.params); n && i > 0 && ops[i - 1].next == Fusion::ResidualAdd) {
        NormParams q = *n;  // the linear before it added `add` into the residual
        q.add = Tensor();
        norm(q);
      } else {
        run_op(*this, op.params);
      }
    }
  }

  // Linear op i with the fusions the plan gave it; returns the index of the last op it consumed.
  size_t run_linear(const StepOps& plan, size_t i, const LinearParams& p) {
    flush();
    const auto& ops = plan.ops;
    const cuda::GemmArgs a = gemm_args(p);
    const bool prologue = i > 0 && ops[i - 1].next == Fusion::NormPrologue;
    if (!gemv_tactic(a)) {
      if (prologue || ops[i].next != Fusion::None) fail("cuda backend: a fused linear without the GEMV tactic");
      gemm_->run(a);
      return i;
    }
    GemvJob g{a, gemm_->tactic(a).gemv_unroll};
    if (prologue) {
      const auto& n = std::get<NormParams>(ops[i - 1].params);
      g.norm_residual = n.residual.data;
      g.norm_weight = n.weight.data;
      g.norm_eps = float(n.eps);
    }
    size_t last = i;
    switch (ops[i].next) {
      case Fusion::ResidualAdd: g.residual = std::get<NormParams>(ops[i + 1].params).residual.data; break;
      case Fusion::SiluGate: {
        const auto& act = std::get<ActivationParams>(ops[i + 1].params);
        g.out = act.out.data;
        g.gate_up = act.in.data;
        last = i + 1;
        break;
      }
      case Fusion::Argmax: g.argmax_out = std::get<ArgmaxParams>(ops[i + 1].params).out.ptr<int32_t>(); last = i + 1; break;
      default: break;
    }
    // The GEMV launched next (after a norm that is its prologue), if any, has its weights prefetched by this one.
    size_t j = last + 1;
    if (j < ops.size() && ops[j].next == Fusion::NormPrologue) ++j;
    if (a.out_dt == dt_ && j < ops.size()) {
      if (const auto* nl = std::get_if<LinearParams>(&ops[j].params)) {
        const cuda::GemmArgs na = gemm_args(*nl);
        if (na.out_dt == dt_ && gemv_tactic(na)) {
          g.l2_next = na.w;
          g.l2_next_bytes = na.N * na.K * int64_t(dtype_size(dt_));
          g.l2_next_gated = na.N % 2 == 0 && na.N > 2 * na.K;  // likely a fused gate | up read by halves
        }
      }
    }
    run_gemv(g);
    return last;
  }

  void flush() { transfers_->issue_pending(); }  // a deferred download goes before any later op

  bool after_decode_attention_ = false;  // the next GEMV follows a decode attention kernel (its L2 budget)

  DType dt_;
  int device_ = 0;  // the CUDA device ordinal (the rank's)
  std::shared_ptr<BlockCache> blocks_ = std::make_shared<BlockCache>();
  cudaDeviceProp props_{};
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::GemmRunner> gemm_;
  int* error_host_ = nullptr;  // mapped pinned flag written by kernels (bad ids)
  int* error_dev_ = nullptr;
  std::unique_ptr<cuda::Transfers> transfers_;  // pinned staging and read slots, the word-copy kernel
  bool capturing_ = false;
  bool invariant_ = false;  // engine.json batch_invariant
  cuda::InvariantAttention inv_attn_;
  int64_t max_seq_len_ = 0;
  std::map<std::string, Tensor> inv_freq_;
  DeviceBuffer attn_o_, attn_lse_, attn_counters_, argmax_val_, argmax_idx_, argmax_counters_, argmax_keys_;
  std::string rope_table_key_;  // the RoPE config rope_table_ was made for
  Tensor rope_table_;           // F32 [max_seq_len, hd]: cos | sin per position
  cuda::MoeRunner moe_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(DType compute, int device) {
  return std::make_unique<CudaBackend>(compute, device);
}

}  // namespace kiln
