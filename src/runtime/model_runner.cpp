#include "runtime/model_runner.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/weights.h"
#include "runtime/fusion_plan.h"

namespace kiln {

ModelRunner::ModelRunner(Engine& engine, KvCacheDesc cache)
    : engine_(engine), be_(engine.backend()), cfg_(engine.model()), cache_(std::move(cache)) {
  for (const LinearSpec& l : linear_layers(cfg_))
    if (l.scheme.quantized()) quant_[l.module] = l.scheme;
}

void ModelRunner::ensure_capacity(int64_t T, int64_t S, int64_t R) {
  const DType dt = be_.compute_dtype();
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size;
  if (T > cap_tokens_ || S > cap_seqs_ || R > cap_rows_) graphs_.clear();
  if (T > cap_tokens_) {
    cap_tokens_ = std::max(T, cap_tokens_ * 2);
    const int64_t C = cap_tokens_;
    residual_ = be_.alloc(dt, {C, H});
    normed_ = be_.alloc(dt, {C, H});
    qkv_ = be_.alloc(dt, {C, cfg_.qkv_size()});
    attn_ = be_.alloc(dt, {C, cfg_.q_size()});
    proj_ = be_.alloc(dt, {C, H});
    mlp_in_ = be_.alloc(dt, {C, (cfg_.activation == Activation::SiluGated ? 2 : 1) * I});
    mlp_act_ = be_.alloc(dt, {C, I});
    mlp_out_ = be_.alloc(dt, {C, H});
    ids_buf_ = be_.alloc(DType::I32, {C});
    pos_buf_ = be_.alloc(DType::I32, {C});
    seq_buf_ = be_.alloc(DType::I32, {C});
    slots_buf_ = be_.alloc(DType::I32, {C});
  }
  const int64_t max_blocks = (engine_.limits().max_seq_len + cache_.tokens_per_block - 1) / cache_.tokens_per_block;
  if (S > cap_seqs_) {
    cap_seqs_ = std::max(S, cap_seqs_ * 2);
    offsets_buf_ = be_.alloc(DType::I32, {cap_seqs_ + 1});
    cached_buf_ = be_.alloc(DType::I32, {cap_seqs_});
    tables_buf_ = be_.alloc(DType::I32, {cap_seqs_, max_blocks});
  }
  if (R > cap_rows_) {
    cap_rows_ = std::max(R, cap_rows_ * 2);
    rows_buf_ = be_.alloc(DType::I32, {cap_rows_});
    Tensor sampled = be_.alloc(DType::I32, {cap_rows_});
    if (!sampled_.empty()) {  // keep the choices made so far (a step with ids_from_sample may follow)
      std::vector<int32_t> keep(static_cast<size_t>(sampled_.dim(0)));
      be_.download(keep.data(), sampled_, keep.size() * 4);
      be_.upload(sampled, keep.data(), keep.size() * 4);
    }
    sampled_ = sampled;
    selected_ = be_.alloc(dt, {cap_rows_, H});
    logits_ = be_.alloc(DType::F32, {cap_rows_, cfg_.vocab_size});
  }
}

Tensor ModelRunner::step(const std::vector<SeqStep>& seqs, bool ids_from_sample) {
  return run_step(seqs, ids_from_sample, false);
}

Tensor ModelRunner::step_greedy(const std::vector<SeqStep>& seqs, bool ids_from_sample, Tensor* logits) {
  const Tensor l = run_step(seqs, ids_from_sample, true);
  if (logits) *logits = l;
  return l.empty() ? Tensor() : sampled_.rows(0, l.dim(0));
}

Tensor ModelRunner::run_step(const std::vector<SeqStep>& seqs, bool ids_from_sample, bool greedy) {
  const int64_t S = int64_t(seqs.size());
  if (S == 0) fail("model step with no sequences");
  if (ids_from_sample) {
    if (sampled_.empty() || S > sampled_.dim(0)) fail("model step: ids_from_sample without a previous step_greedy");
    for (auto& q : seqs)
      if (q.tokens.size() != 1) fail("model step: ids_from_sample needs one new token per sequence");
  }
  const int64_t tpb = cache_.tokens_per_block;
  const int64_t max_blocks = (engine_.limits().max_seq_len + tpb - 1) / tpb;
  // Host-side metadata for the packed batch.
  std::vector<int32_t> ids, pos, seq_of, slots, offsets{0}, cached, tables(size_t(S * max_blocks), 0), rows;
  int32_t max_new = 0, max_ctx = 0;
  for (int64_t s = 0; s < S; ++s) {
    const SeqStep& q = seqs[s];
    const int32_t n = int32_t(q.tokens.size());
    if (n == 0) fail("model step: sequence {} has no new tokens", s);
    const int64_t total = int64_t(q.num_cached) + n;
    if (total > engine_.limits().max_seq_len)
      fail("sequence of {} tokens exceeds the engine's max_seq_len {}", total, engine_.limits().max_seq_len);
    const int64_t need_blocks = (total + tpb - 1) / tpb;
    if (!q.block_table || int64_t(q.block_table->size()) < need_blocks)
      fail("model step: sequence {} needs {} KV blocks but has {}", s, need_blocks, q.block_table ? q.block_table->size() : 0);
    std::copy_n(q.block_table->begin(), need_blocks, tables.begin() + s * max_blocks);
    for (int32_t j = 0; j < n; ++j) {
      const int32_t p = q.num_cached + j;
      if (q.all_logits || (q.want_logits && j == n - 1)) rows.push_back(int32_t(ids.size()));
      ids.push_back(q.tokens[j]);
      pos.push_back(p);
      seq_of.push_back(int32_t(s));
      slots.push_back(int32_t((*q.block_table)[p / tpb] * tpb + p % tpb));
    }
    offsets.push_back(int32_t(ids.size()));
    cached.push_back(q.num_cached);
    max_new = std::max(max_new, n);
    max_ctx = std::max<int32_t>(max_ctx, int32_t(total));
  }
  const int64_t T = int64_t(ids.size()), R = int64_t(rows.size());
  ensure_capacity(T, S, std::max<int64_t>(R, 1));

  meta_.num_tokens = int32_t(T);
  meta_.num_seqs = int32_t(S);
  meta_.max_blocks_per_seq = int32_t(max_blocks);
  meta_.max_new_tokens = max_new;
  meta_.max_context = max_ctx;
  // The step's metadata in one upload_many (on the GPU: one copy kernel instead of a copy per array).
  Tensor ids_t = ids_from_sample ? sampled_.rows(0, T) : ids_buf_.reshaped({T});
  meta_.positions = pos_buf_.reshaped({T});
  meta_.token_seq = seq_buf_.reshaped({T});
  meta_.slot_mapping = slots_buf_.reshaped({T});
  meta_.seq_offsets = offsets_buf_.reshaped({S + 1});
  meta_.num_cached = cached_buf_.reshaped({S});
  meta_.block_tables = tables_buf_.reshaped({S, max_blocks});
  const std::vector<int32_t> rows_or_0 = rows.empty() ? std::vector<int32_t>{0} : rows;
  Tensor rows_t = rows_buf_.reshaped({std::max<int64_t>(R, 1)});
  std::vector<Backend::Upload> ups;
  if (!ids_from_sample) ups.push_back({&ids_t, ids.data(), ids.size() * 4});
  ups.push_back({&meta_.positions, pos.data(), pos.size() * 4});
  ups.push_back({&meta_.token_seq, seq_of.data(), seq_of.size() * 4});
  ups.push_back({&meta_.slot_mapping, slots.data(), slots.size() * 4});
  ups.push_back({&meta_.seq_offsets, offsets.data(), offsets.size() * 4});
  ups.push_back({&meta_.num_cached, cached.data(), cached.size() * 4});
  ups.push_back({&meta_.block_tables, tables.data(), tables.size() * 4});
  ups.push_back({&rows_t, rows_or_0.data(), rows_or_0.size() * 4});
  be_.upload_many(ups);
  // A decode-only step replays the graph recorded for its batch size (all metadata was uploaded above, into
  // buffers at fixed addresses). The first step of a batch size runs directly (lazy initializations happen
  // outside any recording), the second records the graph.
  const bool graph = be_.supports_step_graphs() && max_new == 1 && R == S && !observer_;
  bool identity = R == T;
  for (int64_t i = 0; identity && i < R; ++i) identity = rows[size_t(i)] == i;
  const int64_t key = 4 * S + (greedy ? 2 : 0) + (ids_from_sample ? 1 : 0);
  auto it = graph ? graphs_.find(key) : graphs_.end();
  if (graph && it == graphs_.end()) {
    graphs_.emplace(key, nullptr);
    run_layers(T, R, ids_t, rows_t, identity, greedy);
  } else if (graph) {
    if (!it->second) {
      be_.begin_capture();
      try {
        run_layers(T, R, ids_t, rows_t, identity, greedy);
      } catch (...) {
        be_.end_capture();
        throw;
      }
      it->second = be_.end_capture();
    }
    it->second->replay();
  } else {
    run_layers(T, R, ids_t, rows_t, identity, greedy);
  }
  return R == 0 ? Tensor() : logits_.rows(0, R);
}

void ModelRunner::run_layers(int64_t T, int64_t R, const Tensor& ids_t, const Tensor& rows_t, bool rows_identity,
                             bool greedy) {
  plan_ = StepOps();
  build_ops(plan_, T, R, ids_t, rows_t, rows_identity, greedy);
  if (observer_) {
    for (const StepOp& op : plan_.ops) {
      run_op(be_, op.params);
      observer_(op);
    }
    return;
  }
  plan_fusions(plan_, be_);
  be_.run(plan_);
}

void ModelRunner::build_ops(StepOps& ops, int64_t T, int64_t R, const Tensor& ids_t, const Tensor& rows_t,
                            bool rows_identity, bool greedy) const {
  const ModelConfig& c = cfg_;
  auto W = [&](const std::string& n) { return engine_.weight(n); };
  auto Wopt = [&](const std::string& n) { return engine_.has_weight(n) ? engine_.weight(n) : Tensor(); };
  // A linear layer `module` (its weight, quantization parameters and bias) from x into out.
  auto linear = [&](const std::string& module, const Tensor& x, const Tensor& out) {
    LinearParams lp{x, W(module + ".weight"), Wopt(module + ".bias"), out};
    auto it = quant_.find(module);
    if (it != quant_.end()) {
      lp.quant = it->second;
      lp.weight_scale = W(module + ".weight_scale");
      lp.weight_zero = Wopt(module + ".weight_zero");
      lp.input_scale = Wopt(module + ".input_scale");
      lp.pre_quant_scale = Wopt(module + ".pre_quant_scale");
    }
    return lp;
  };
  auto expert_quant = [&](const std::string& module) {
    ExpertQuant q;
    auto it = quant_.find(module);
    if (it == quant_.end()) return q;
    q.quant = it->second;
    q.weight_scale = W(module + ".weight_scale");
    q.weight_zero = Wopt(module + ".weight_zero");
    q.input_scale = Wopt(module + ".input_scale");
    q.pre_quant_scale = Wopt(module + ".pre_quant_scale");
    return q;
  };
  Tensor residual = residual_.rows(0, T), normed = normed_.rows(0, T), qkv = qkv_.rows(0, T);
  Tensor attn = attn_.rows(0, T), proj = proj_.rows(0, T), mlp_in = mlp_in_.rows(0, T);
  Tensor mlp_act = mlp_act_.rows(0, T), mlp_out = mlp_out_.rows(0, T);

  ops.ops.reserve(size_t(c.num_layers) * 10 + 5);
  ops.add(EmbeddingParams{ids_t, W("embed.weight"), meta_.positions, Wopt("pos_embed.weight"), residual}, "embedding");
  Tensor pending;  // the sub-layer output to add into the residual stream at the next norm
  for (int64_t l = 0; l < c.num_layers; ++l) {
    auto L = [&](const std::string& s) { return layer_name(l, s); };
    ops.add(NormParams{c.norm, c.norm_eps, pending, residual, W(L("input_norm.weight")), Wopt(L("input_norm.bias")),
                       normed},
            "norm(input)");
    ops.add(linear(L("attention.qkv"), normed, qkv), "linear(qkv)");
    RopeKvParams rp;
    rp.qkv = qkv;
    rp.q_norm = Wopt(L("attention.q_norm.weight"));
    rp.k_norm = Wopt(L("attention.k_norm.weight"));
    rp.qk_norm_eps = c.norm_eps;
    rp.apply_rope = c.position == PositionType::Rope;
    rp.rope = c.rope;
    rp.num_heads = c.num_heads;
    rp.num_kv_heads = c.num_kv_heads;
    rp.head_dim = c.head_dim;
    rp.meta = &meta_;
    rp.cache = cache_;
    rp.layer = l;
    ops.add(rp, "rope_kv");
    AttentionParams ap;
    ap.qkv = qkv;
    ap.out = attn;
    ap.num_heads = c.num_heads;
    ap.num_kv_heads = c.num_kv_heads;
    ap.head_dim = c.head_dim;
    ap.sliding_window = c.sliding_window;
    ap.scale = float(1.0 / std::sqrt(double(c.head_dim)));
    ap.meta = &meta_;
    ap.cache = cache_;
    ap.layer = l;
    ops.add(ap, "attention");
    ops.add(linear(L("attention.dense"), attn, proj), "linear(dense)");
    ops.add(NormParams{c.norm, c.norm_eps, proj, residual, W(L("post_norm.weight")), Wopt(L("post_norm.bias")), normed},
            "norm(post)");
    if (c.num_experts > 0) {
      ops.add(MoeParams{normed, W(L("moe.router.weight")), W(L("moe.gate_up.weight")), W(L("moe.down.weight")),
                        c.experts_top_k, mlp_out, expert_quant(L("moe.gate_up")), expert_quant(L("moe.down"))},
              "moe");
    } else if (c.activation == Activation::SiluGated) {
      ops.add(linear(L("mlp.gate_up"), normed, mlp_in), "linear(gate_up)");
      ops.add(ActivationParams{ActKind::SiluGated, mlp_in, mlp_act}, "silu_gated");
      ops.add(linear(L("mlp.down"), mlp_act, mlp_out), "linear(down)");
    } else {
      ops.add(linear(L("mlp.fc"), normed, mlp_in), "linear(fc)");
      ops.add(ActivationParams{ActKind::GeluTanh, mlp_in, mlp_act}, "gelu");
      ops.add(linear(L("mlp.down"), mlp_act, mlp_out), "linear(down)");
    }
    pending = mlp_out;
  }
  if (R == 0) return;
  ops.add(NormParams{c.norm, c.norm_eps, pending, residual, W("final_norm.weight"), Wopt("final_norm.bias"), normed},
          "norm(final)");
  Tensor selected = selected_.rows(0, R), logits = logits_.rows(0, R);
  if (rows_identity) {
    selected = normed;
  } else {
    ops.add(GatherRowsParams{normed, rows_t.rows(0, R), selected}, "gather_rows");
  }
  ops.add(c.tie_embeddings ? LinearParams{selected, W("embed.weight"), Tensor(), logits}
                            : linear("lm_head", selected, logits),
          "linear(lm_head)");
  if (greedy) ops.add(ArgmaxParams{logits, sampled_.rows(0, R)}, "argmax");
}

}  // namespace kiln
