#include "quantize/calibrate.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "model/weights.h"
#include "runtime/kv_cache.h"
#include "runtime/model_runner.h"

namespace kiln {

float LinearStats::tensor_amax() const { return amax.empty() ? 0.0f : *std::max_element(amax.begin(), amax.end()); }

namespace {

// Adds rows x [T, K] to s, keeping `keep` of them (evenly spaced) as samples.
void observe_rows(LinearStats& s, const float* x, int64_t T, int64_t K, int64_t keep) {
  if (s.K == 0) {
    s.K = K;
    s.amax.assign(size_t(K), 0.0f);
    s.abs_sum.assign(size_t(K), 0.0);
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k) {
      const float a = std::fabs(x[t * K + k]);
      if (!std::isfinite(a)) fail("calibration: a non-finite activation entering a linear layer");
      s.amax[size_t(k)] = std::max(s.amax[size_t(k)], a);
      s.abs_sum[size_t(k)] += a;
    }
  s.rows += T;
  const int64_t n = std::min(keep, T);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = (2 * i + 1) * T / (2 * n);
    s.samples.insert(s.samples.end(), x + t * K, x + (t + 1) * K);
  }
}

}  // namespace

CalibStats calibrate(Engine& engine, const std::vector<std::vector<int32_t>>& seqs, const CalibOptions& o) {
  const ModelConfig& c = engine.model();
  if (seqs.empty()) fail("calibration: no sequences");
  int64_t longest = 0;
  for (auto& s : seqs) longest = std::max<int64_t>(longest, int64_t(s.size()));
  if (longest > engine.limits().max_seq_len)
    fail("calibration: a sequence of {} tokens is longer than the engine's max_seq_len {}", longest,
         engine.limits().max_seq_len);
  const int64_t tpb = 64, blocks = (longest + tpb - 1) / tpb;
  ModelRunner runner(engine, allocate_kv_cache(engine.backend(), c, blocks, tpb));
  // Linear layers by the address of their weight (the tied lm_head reads the embedding table).
  std::map<const void*, std::string> by_weight;
  for (const LinearSpec& l : linear_layers(c)) by_weight[engine.weight(l.module + ".weight").data] = l.module;
  if (c.tie_embeddings) by_weight[engine.weight("embed.weight").data] = "lm_head";
  CalibStats st;
  st.kv_amax.assign(size_t(c.num_layers), {0.0f, 0.0f});
  const int64_t keep = std::max<int64_t>(1, o.rows_kept / int64_t(seqs.size()));
  runner.set_op_observer([&](const StepOp& op) {
    if (auto* p = std::get_if<LinearParams>(&op.params)) {
      auto it = by_weight.find(p->weight.data);
      if (it != by_weight.end()) observe_rows(st.linears[it->second], p->x.ptr<float>(), p->x.dim(0), p->x.dim(1), keep);
    } else if (auto* m = std::get_if<MoeParams>(&op.params)) {
      auto it = by_weight.find(m->gate_up.data);
      if (it != by_weight.end()) observe_rows(st.linears[it->second], m->x.ptr<float>(), m->x.dim(0), m->x.dim(1), keep);
    } else if (auto* r = std::get_if<RopeKvParams>(&op.params)) {
      const int64_t T = r->qkv.dim(0), row = r->qkv.dim(1), kv = r->num_kv_heads * r->head_dim;
      const int64_t k0 = r->num_heads * r->head_dim;
      auto& a = st.kv_amax[size_t(r->layer)];
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < kv; ++i) {
          a[0] = std::max(a[0], std::fabs(r->qkv.ptr<float>()[t * row + k0 + i]));
          a[1] = std::max(a[1], std::fabs(r->qkv.ptr<float>()[t * row + k0 + kv + i]));
        }
    }
  });
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) table[size_t(b)] = int32_t(b);
  std::optional<ProgressBar> bar;
  if (o.progress) bar.emplace("calibrating", int64_t(seqs.size()));
  for (size_t i = 0; i < seqs.size(); ++i) {
    SeqStep s{seqs[i], 0, &table, true, true};
    runner.step({s});
    st.tokens += int64_t(seqs[i].size());
    if (bar) bar->update(int64_t(i + 1));
  }
  if (bar) bar->finish();
  st.sequences = int64_t(seqs.size());
  return st;
}

}  // namespace kiln
