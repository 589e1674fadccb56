#include "backend/cuda/batch_invariant.h"

#include <algorithm>

#include "core/error.h"

namespace kiln::cuda {

namespace {

constexpr int64_t kPartialBytes = int64_t(64) << 20;  // split-KV partials of one launch
constexpr int64_t kMaxGridRows = 65535;               // grid z

}  // namespace

std::string batch_invariant_unsupported(const ModelConfig& m) {
  if (m.num_kv_heads <= 0 || m.num_heads % m.num_kv_heads != 0 ||
      !decode_attention_supported(m.num_heads, m.num_kv_heads))
    return fmt::format("{} attention heads per kv head ({} / {}); the split-KV attention kernel takes 1, 2, 3, 4 or 8",
                       m.num_kv_heads > 0 ? m.num_heads / m.num_kv_heads : 0, m.num_heads, m.num_kv_heads);
  if (m.head_dim % 8 != 0 || m.head_dim > 256)
    return fmt::format("head_dim {}; the split-KV attention kernel takes a multiple of 8 up to 256", m.head_dim);
  return "";
}

void InvariantAttention::configure(const ModelConfig& m, int64_t max_seq_len, int64_t graph_rows) {
  if (const std::string why = batch_invariant_unsupported(m); !why.empty()) fail("batch-invariant engine: {}", why);
  splits_ = std::max<int64_t>(1, ceil_div(max_seq_len, kInvariantChunk));
  nh_ = m.num_heads;
  nkv_ = m.num_kv_heads;
  hd_ = m.head_dim;
  const int64_t nh = nh_, nkv = nkv_, hd = hd_;
  const int64_t row_bytes = nh * splits_ * (hd + 1) * int64_t(sizeof(float));
  rows_ = std::min(kMaxGridRows, std::max(graph_rows, kPartialBytes / row_bytes));
  part_o_.get<float>(size_t(rows_ * nh * splits_ * hd), false, "invariant attention partials");
  part_lse_.get<float>(size_t(rows_ * nh * splits_), false, "invariant attention partials");
  counters_.get<int>(size_t(rows_ * nkv), false, "invariant attention counters");
}

void InvariantAttention::run(AttentionKParams k, const int32_t* token_seq, bool capturing, cudaStream_t s) {
  if (splits_ == 0) fail("cuda backend: batch-invariant attention used before configure");
  if (k.nh != nh_ || k.nkv != nkv_ || k.hd != hd_)
    fail("batch-invariant attention: configured for {} heads, {} kv heads, head_dim {}; called with {}, {}, {}", nh_,
         nkv_, hd_, k.nh, k.nkv, k.hd);
  k.invariant = true;
  k.fuse_rope = false;
  k.token_seq = token_seq;
  k.inv_chunk = kInvariantChunk;
  k.num_splits = int(splits_);
  k.part_o = part_o_.get<float>(size_t(rows_ * nh_ * splits_ * hd_), capturing, "invariant attention partials");
  k.part_lse = part_lse_.get<float>(size_t(rows_ * nh_ * splits_), capturing, "invariant attention partials");
  k.counters = counters_.get<int>(size_t(rows_ * nkv_), capturing, "invariant attention counters");
  for (int64_t r0 = 0; r0 < k.T; r0 += rows_) {
    k.row0 = r0;
    k.rows = std::min(rows_, k.T - r0);
    invoke_decode_attention(k, s);
  }
}

}  // namespace kiln::cuda
