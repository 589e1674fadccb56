#include "backend/cpu/cpu_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_gemm.h"
#include "backend/cpu/quant_linear.h"
#include "backend/cpu/sampling.h"
#include "core/error.h"
#include "core/quant_math.h"
#include "model/rope.h"

namespace kiln {

namespace {

// The KV cache of one layer: F32, or F8_E4M3 / I8 values with a k scale and a v scale (x = q * scale; written as
// q = quantize(x / scale), src/core/quant_math.h).
struct CacheLayer {
  DType dtype = DType::F32;
  uint8_t* base = nullptr;  // [blocks, 2, nkv, tpb, hd] elements of dtype
  float scale[2] = {1.0f, 1.0f};

  CacheLayer(const KvCacheDesc& c, int64_t layer, const char* op) : dtype(c.pool.dtype) {
    if (dtype != DType::F32 && dtype != DType::F8_E4M3 && dtype != DType::I8)
      fail("cpu backend: {} over a {} KV cache (the cpu target reads float32, fp8 e4m3 or int8 caches)", op,
           dtype_name(dtype));
    if (dtype != DType::F32) {
      if (c.scales.dtype != DType::F32 || c.scales.shape != std::vector<int64_t>{c.num_layers, 2})
        fail("cpu backend: {} over a {} KV cache without F32 scales [{}, 2]", op, dtype_name(dtype), c.num_layers);
      scale[0] = c.scales.ptr<float>()[layer * 2];
      scale[1] = c.scales.ptr<float>()[layer * 2 + 1];
    }
    base = static_cast<uint8_t*>(c.pool.data) + size_t(layer * c.layer_stride()) * dtype_size(dtype);
  }
  // n values at element offset `at`, kv 0 (k) or 1 (v).
  void store(int64_t at, const float* x, int64_t n, int kv) const {
    if (dtype == DType::F32) {
      std::memcpy(reinterpret_cast<float*>(base) + at, x, size_t(n) * 4);
    } else if (dtype == DType::F8_E4M3) {
      for (int64_t i = 0; i < n; ++i) base[at + i] = quantize_fp8(x[i] / scale[kv]);
    } else {
      for (int64_t i = 0; i < n; ++i) reinterpret_cast<int8_t*>(base)[at + i] = quantize_int8(x[i] / scale[kv]);
    }
  }
  void load(int64_t at, float* x, int64_t n, int kv) const {
    if (dtype == DType::F32) {
      std::memcpy(x, reinterpret_cast<const float*>(base) + at, size_t(n) * 4);
    } else if (dtype == DType::F8_E4M3) {
      for (int64_t i = 0; i < n; ++i) x[i] = f8e4m3_to_f32(base[at + i]) * scale[kv];
    } else {
      for (int64_t i = 0; i < n; ++i) x[i] = float(reinterpret_cast<const int8_t*>(base)[at + i]) * scale[kv];
    }
  }
};

}  // namespace

CpuBackend::CpuBackend(int num_threads) : pool_(num_threads) {}

Tensor CpuBackend::alloc(DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  size_t bytes = std::max<size_t>(t.nbytes(), 64);
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) fail("cpu backend: out of memory allocating {} bytes", bytes);
  t.owner = std::shared_ptr<void>(p, std::free);
  t.data = p;
  return t;
}

void CpuBackend::upload(Tensor& dst, const void* src, size_t bytes) { std::memcpy(dst.data, src, bytes); }
void CpuBackend::download(void* dst, const Tensor& src, size_t bytes) { std::memcpy(dst, src.data, bytes); }
void CpuBackend::fill_zero(Tensor& t) { std::memset(t.data, 0, t.nbytes()); }

size_t CpuBackend::free_memory() const {
  // MemAvailable: free pages plus the page cache the kernel can drop (MemFree alone undercounts a busy machine).
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    unsigned long long kb = 0;
    bool found = false;
    while (!found && std::fgets(line, sizeof line, f)) found = std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1;
    std::fclose(f);
    if (found) return size_t(kb) * 1024;
  }
  long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? size_t(pages) * size_t(page) : 0;
}

Tensor CpuBackend::load_weight(const WeightView& v) {
  if (v.dtype == DType::F8_E4M3 || v.dtype == DType::I8 || v.dtype == DType::I4X2) {  // quantized: kept as stored
    Tensor t = alloc(v.dtype, v.shape);
    std::memcpy(t.data, v.data, t.nbytes());
    return t;
  }
  if (!is_float(v.dtype))
    fail("cpu backend: weight '{}' is {}: not a weight type the cpu target reads", v.name, dtype_name(v.dtype));
  Tensor t = alloc(DType::F32, v.shape);
  convert_to_f32(v.dtype, v.data, t.ptr<float>(), size_t(v.numel()));
  return t;
}

void CpuBackend::embedding(const EmbeddingParams& p) {
  const int64_t T = p.ids.dim(0), H = p.table.dim(1), V = p.table.dim(0);
  const int32_t* ids = p.ids.ptr<int32_t>();
  for (int64_t t = 0; t < T; ++t) {
    if (ids[t] < 0 || ids[t] >= V) fail("token id {} is outside the vocabulary (size {})", ids[t], V);
    float* o = p.out.ptr<float>() + t * H;
    std::memcpy(o, p.table.ptr<float>() + int64_t(ids[t]) * H, size_t(H) * 4);
    if (!p.pos_table.empty()) {
      int32_t pos = p.positions.ptr<int32_t>()[t];
      if (pos < 0 || pos >= p.pos_table.dim(0)) fail("position {} is past the model's {} positions", pos, p.pos_table.dim(0));
      const float* pe = p.pos_table.ptr<float>() + int64_t(pos) * H;
      for (int64_t h = 0; h < H; ++h) o[h] += pe[h];
    }
  }
}

void CpuBackend::norm(const NormParams& p) {
  const int64_t T = p.residual.dim(0), H = p.residual.dim(1);
  pool_.parallel_for(T, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* r = p.residual.ptr<float>() + t * H;
      if (!p.add.empty()) {
        const float* a = p.add.ptr<float>() + t * H;
        for (int64_t h = 0; h < H; ++h) r[h] += a[h];
      }
      float* o = p.out.ptr<float>() + t * H;
      const float* w = p.weight.ptr<float>();
      if (p.type == NormType::RMSNorm) {
        double ss = 0;
        for (int64_t h = 0; h < H; ++h) ss += double(r[h]) * r[h];
        float inv = float(1.0 / std::sqrt(ss / double(H) + p.eps));
        for (int64_t h = 0; h < H; ++h) o[h] = w[h] * (r[h] * inv);
      } else {
        double mean = 0, var = 0;
        for (int64_t h = 0; h < H; ++h) mean += r[h];
        mean /= double(H);
        for (int64_t h = 0; h < H; ++h) var += (r[h] - mean) * (r[h] - mean);
        var /= double(H);
        float inv = float(1.0 / std::sqrt(var + p.eps));
        const float* bias = p.bias.empty() ? nullptr : p.bias.ptr<float>();
        for (int64_t h = 0; h < H; ++h) o[h] = float((r[h] - mean) * inv) * w[h] + (bias ? bias[h] : 0.f);
      }
    }
  });
}

void CpuBackend::linear(const LinearParams& p) {
  const int64_t T = p.x.dim(0), K = p.x.dim(1), N = p.weight.dim(0);
  float* out = p.out.ptr<float>();
  if (p.quant.quantized()) {
    const CpuQuantMatrix w = cpu_quant_matrix(p.quant, p.weight, p.weight_scale, p.weight_zero, p.input_scale,
                                              p.pre_quant_scale, 0, "linear");
    if (w.K != K) fail("linear: x is {} but the quantized weight has {} inputs", p.x.shape_str(), w.K);
    cpu_quant_linear(pool_, p.x.ptr<float>(), T, w, out);
  } else {
    if (p.weight.dtype != DType::F32) fail("linear: a {} weight without a quantization scheme", dtype_name(p.weight.dtype));
    if (p.weight.dim(1) != K) fail("linear: x is {} but weight is {}", p.x.shape_str(), p.weight.shape_str());
    row_invariant_gemm(p.x.ptr<float>(), T, p.weight.ptr<float>(), N, K, out);
  }
  if (!p.bias.empty()) {
    const float* b = p.bias.ptr<float>();
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) out[t * N + n] += b[n];
  }
}

void CpuBackend::rope_kv(const RopeKvParams& p) {
  const CacheLayer cache(p.cache, p.layer, "rope_kv");
  const StepMeta& m = *p.meta;
  const int64_t T = m.num_tokens, nh = p.num_heads, nkv = p.num_kv_heads, hd = p.head_dim, half = hd / 2;
  const int64_t row = (nh + 2 * nkv) * hd, bs = p.cache.tokens_per_block;
  std::vector<float> inv_freq = p.apply_rope ? rope_inv_freq(p.rope, hd) : std::vector<float>();
  pool_.parallel_for(T, [&](int64_t b, int64_t e) {
    std::vector<float> cs(static_cast<size_t>(hd));
    for (int64_t t = b; t < e; ++t) {
      float* q = p.qkv.ptr<float>() + t * row;
      float* k = q + nh * hd;
      float* v = k + nkv * hd;
      auto head_norm = [&](float* x, const Tensor& w) {
        double ss = 0;
        for (int64_t i = 0; i < hd; ++i) ss += double(x[i]) * x[i];
        float inv = float(1.0 / std::sqrt(ss / double(hd) + p.qk_norm_eps));
        for (int64_t i = 0; i < hd; ++i) x[i] = w.ptr<float>()[i] * (x[i] * inv);
      };
      if (!p.q_norm.empty()) for (int64_t h = 0; h < nh; ++h) head_norm(q + h * hd, p.q_norm);
      if (!p.k_norm.empty()) for (int64_t h = 0; h < nkv; ++h) head_norm(k + h * hd, p.k_norm);
      if (p.apply_rope) {
        const float pos = float(m.positions.ptr<int32_t>()[t]);
        for (int64_t i = 0; i < half; ++i) {
          double ang = double(pos) * double(inv_freq[i]);
          cs[i] = std::cos(ang);
          cs[half + i] = std::sin(ang);
        }
        auto rotate = [&](float* x) {
          for (int64_t i = 0; i < half; ++i) {
            float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * cs[i] - x1 * cs[half + i];
            x[i + half] = x1 * cs[i] + x0 * cs[half + i];
          }
        };
        for (int64_t h = 0; h < nh; ++h) rotate(q + h * hd);
        for (int64_t h = 0; h < nkv; ++h) rotate(k + h * hd);
      }
      const int32_t slot = m.slot_mapping.ptr<int32_t>()[t];
      const int64_t blk = slot / bs, off = slot % bs;
      const int64_t kb = blk * 2 * nkv * bs * hd, vb = kb + nkv * bs * hd;  // element offsets in the layer
      for (int64_t h = 0; h < nkv; ++h) {
        cache.store(kb + (h * bs + off) * hd, k + h * hd, hd, 0);
        cache.store(vb + (h * bs + off) * hd, v + h * hd, hd, 1);
      }
    }
  });
}

void CpuBackend::attention(const AttentionParams& p) {
  const CacheLayer cache(p.cache, p.layer, "attention");
  const StepMeta& m = *p.meta;
  const int64_t T = m.num_tokens, nh = p.num_heads, nkv = p.num_kv_heads, hd = p.head_dim;
  const int64_t row = (nh + 2 * nkv) * hd, bs = p.cache.tokens_per_block, group = nh / nkv;
  const int32_t* seq_of = m.token_seq.ptr<int32_t>();
  const int32_t* positions = m.positions.ptr<int32_t>();
  const int32_t* tables = m.block_tables.ptr<int32_t>();
  pool_.parallel_for(T * nh, [&](int64_t b, int64_t e) {
    std::vector<float> scores, kv(static_cast<size_t>(hd));  // kv [hd]: one dequantized key or value
    for (int64_t i = b; i < e; ++i) {
      const int64_t t = i / nh, h = i % nh, kvh = h / group;
      const int32_t s = seq_of[t], pos = positions[t];
      const int32_t* table = tables + int64_t(s) * m.max_blocks_per_seq;
      const int64_t first = p.sliding_window > 0 ? std::max<int64_t>(0, pos - p.sliding_window + 1) : 0;
      const int64_t n = pos + 1 - first;
      const float* q = p.qkv.ptr<float>() + t * row + h * hd;
      scores.resize(size_t(n));
      float mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t kp = first + j;
        cache.load(int64_t(table[kp / bs]) * 2 * nkv * bs * hd + (kvh * bs + kp % bs) * hd, kv.data(), hd, 0);
        float d = 0;
        for (int64_t x = 0; x < hd; ++x) d += q[x] * kv[x];
        scores[j] = d * p.scale;
        mx = std::max(mx, scores[j]);
      }
      double sum = 0;
      for (auto& sc : scores) { sc = std::exp(sc - mx); sum += sc; }
      float* o = p.out.ptr<float>() + t * nh * hd + h * hd;
      std::fill(o, o + hd, 0.f);
      for (int64_t j = 0; j < n; ++j) {
        const int64_t kp = first + j;
        cache.load(int64_t(table[kp / bs]) * 2 * nkv * bs * hd + nkv * bs * hd + (kvh * bs + kp % bs) * hd, kv.data(),
                   hd, 1);
        const float w = float(scores[j] / sum);
        for (int64_t x = 0; x < hd; ++x) o[x] += w * kv[x];
      }
    }
  });
}

void CpuBackend::activation(const ActivationParams& p) {
  const int64_t T = p.out.dim(0), I = p.out.dim(1);
  pool_.parallel_for(T, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* o = p.out.ptr<float>() + t * I;
      if (p.kind == ActKind::SiluGated) {
        const float* g = p.in.ptr<float>() + t * 2 * I;
        const float* u = g + I;
        for (int64_t i = 0; i < I; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
      } else {
        const float* x = p.in.ptr<float>() + t * I;
        for (int64_t i = 0; i < I; ++i) {
          float v = x[i];
          o[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        }
      }
    }
  });
}

void CpuBackend::moe(const MoeParams& p) {
  const int64_t T = p.x.dim(0), H = p.x.dim(1), E = p.router.dim(0), I = p.gate_up.dim(1) / 2, K = p.top_k;
  const float* x = p.x.ptr<float>();
  std::vector<float> logits(static_cast<size_t>(T * E));  // [T, E]
  row_invariant_gemm(x, T, p.router.ptr<float>(), E, H, logits.data());
  // Per token: softmax over experts, top-k, renormalize. Then group tokens by expert for dense GEMMs.
  std::vector<std::vector<std::pair<int64_t, float>>> by_expert(static_cast<size_t>(E));  // (token, weight)
  for (int64_t t = 0; t < T; ++t) {
    float* l = logits.data() + t * E;
    float mx = *std::max_element(l, l + E);
    double sum = 0;
    std::vector<double> prob(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) { prob[e] = std::exp(double(l[e]) - mx); sum += prob[e]; }
    std::vector<int64_t> idx(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) idx[e] = e;
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return prob[a] > prob[b]; });
    double top_sum = 0;
    for (int64_t k = 0; k < K; ++k) top_sum += prob[idx[k]];
    for (int64_t k = 0; k < K; ++k) by_expert[idx[k]].push_back({t, float(prob[idx[k]] / top_sum)});
  }
  float* out = p.out.ptr<float>();
  std::memset(out, 0, size_t(T * H) * 4);
  // out [n, N] = x [n, K] through expert e's matrix of w ([E, N, K], float or quantized).
  auto expert_gemm = [&](const Tensor& w, const ExpertQuant& q, int64_t e, const float* in, int64_t n, float* o,
                         const char* what) {
    if (q.quant.quantized()) {
      cpu_quant_linear(pool_, in, n,
                       cpu_quant_matrix(q.quant, w, q.weight_scale, q.weight_zero, q.input_scale, q.pre_quant_scale, e,
                                        what),
                       o);
    } else {
      if (w.dtype != DType::F32) fail("{}: a {} weight without a quantization scheme", what, dtype_name(w.dtype));
      row_invariant_gemm(in, n, w.ptr<float>() + e * w.dim(1) * w.dim(2), w.dim(1), w.dim(2), o);
    }
  };
  std::vector<float> xs, gu, act, y;
  for (int64_t e = 0; e < E; ++e) {
    auto& toks = by_expert[e];
    const int64_t n = int64_t(toks.size());
    if (n == 0) continue;
    xs.resize(size_t(n * H));      // [n, H]
    gu.resize(size_t(n * 2 * I));  // [n, 2I]
    act.resize(size_t(n * I));     // [n, I]
    y.resize(size_t(n * H));       // [n, H]
    for (int64_t r = 0; r < n; ++r) std::memcpy(&xs[r * H], x + toks[r].first * H, size_t(H) * 4);
    expert_gemm(p.gate_up, p.gate_up_quant, e, xs.data(), n, gu.data(), "moe gate_up");
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < I; ++i) {
        float g = gu[r * 2 * I + i], u = gu[r * 2 * I + I + i];
        act[r * I + i] = g / (1.0f + std::exp(-g)) * u;
      }
    expert_gemm(p.down, p.down_quant, e, act.data(), n, y.data(), "moe down");
    for (int64_t r = 0; r < n; ++r)
      for (int64_t h = 0; h < H; ++h) out[toks[r].first * H + h] += toks[r].second * y[r * H + h];
  }
}

void CpuBackend::gather_rows(const GatherRowsParams& p) {
  const int64_t R = p.rows.dim(0), H = p.x.dim(1);
  for (int64_t r = 0; r < R; ++r)
    std::memcpy(p.out.ptr<float>() + r * H, p.x.ptr<float>() + int64_t(p.rows.ptr<int32_t>()[r]) * H, size_t(H) * 4);
}

void CpuBackend::argmax(const ArgmaxParams& p) {
  const int64_t R = p.logits.dim(0), V = p.logits.dim(1);
  for (int64_t r = 0; r < R; ++r) {
    const float* x = p.logits.ptr<float>() + r * V;
    p.out.ptr<int32_t>()[r] = int32_t(std::max_element(x, x + V) - x);
  }
}

namespace {

SampleLists sample_lists(const Tensor& penalties, const Tensor& bans) {
  SampleLists l;
  if (!penalties.empty()) {
    l.penalties = penalties.ptr<const PenaltyEntry>();
    l.num_penalties = penalties.numel() / 2;
  }
  if (!bans.empty()) {
    l.bans = bans.ptr<const int32_t>();
    l.num_bans = bans.numel();
  }
  return l;
}

}  // namespace

void CpuBackend::sample(const SampleParams& p) {
  const int64_t R = p.ids.numel(), L = p.logits.dim(0), V = p.logits.dim(1);
  check_sample_tensors("sample", p.logits, p.rows, p.penalties, p.bans, R);
  if (p.ids.dtype != DType::I32 || p.log_probs.dtype != DType::F32 || p.log_probs.numel() != R)
    fail("sample: ids must be I32 [R] and log_probs F32 [R]");
  const auto* rows = p.rows.ptr<const SampleRowParams>();
  const SampleLists lists = sample_lists(p.penalties, p.bans);
  pool_.parallel_for(R, [&](int64_t b, int64_t e) {
    std::vector<float> x(static_cast<size_t>(V));  // [V] the row's private copy
    for (int64_t r = b; r < e; ++r) {
      SampledToken t;
      if (!sample_row_valid(rows[r], L, lists.num_penalties, lists.num_bans)) {
        t.id = kBadRow;
      } else {
        const float* src = p.logits.ptr<float>() + int64_t(rows[r].logits_row) * V;
        std::copy(src, src + V, x.begin());
        t = sample_row(x.data(), V, rows[r], lists);
      }
      p.ids.ptr<int32_t>()[r] = t.id;
      p.log_probs.ptr<float>()[r] = t.log_prob;
    }
  });
}

void CpuBackend::top_log_probs(const TopLogProbsParams& p) {
  const int64_t R = p.ids.dim(0), L = p.logits.dim(0), V = p.logits.dim(1), k = p.k;
  check_sample_tensors("top_log_probs", p.logits, p.rows, p.penalties, p.bans, R);
  if (k < 1 || k > V || k > kMaxTopLogProbs) fail("top_log_probs: k {} must be in [1, min(V {}, {})]", k, V, kMaxTopLogProbs);
  if (p.ids.dtype != DType::I32 || p.values.dtype != DType::F32 || p.ids.numel() != R * k || p.values.numel() != R * k)
    fail("top_log_probs: ids must be I32 [R, k] and values F32 [R, k]");
  const auto* rows = p.rows.ptr<const SampleRowParams>();
  const SampleLists lists = sample_lists(p.penalties, p.bans);
  pool_.parallel_for(R, [&](int64_t b, int64_t e) {
    std::vector<float> lp(static_cast<size_t>(V));  // [V]
    for (int64_t r = b; r < e; ++r) {
      int32_t* ids = p.ids.ptr<int32_t>() + r * k;
      float* values = p.values.ptr<float>() + r * k;
      if (!sample_row_valid(rows[r], L, lists.num_penalties, lists.num_bans)) {
        std::fill(ids, ids + k, kBadRow);
        std::fill(values, values + k, 0.0f);
        continue;
      }
      top_log_probs_row(p.logits.ptr<float>() + int64_t(rows[r].logits_row) * V, V, rows[r], lists, k, lp.data(), ids,
                        values);
    }
  });
}

Tensor CpuBackend::random_weight(std::vector<int64_t> shape, uint64_t seed, float scale) {
  Tensor t = alloc(DType::F32, std::move(shape));
  float* w = t.ptr<float>();
  pool_.parallel_for(t.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) w[i] = scale * random_uniform(seed, uint64_t(i));
  });
  return t;
}

void CpuBackend::copy_kv_blocks(const KvCacheDesc& c, const std::vector<std::pair<int32_t, int32_t>>& src_dst) {
  const size_t esize = dtype_size(c.pool.dtype);
  const size_t block = size_t(2 * c.num_kv_heads * c.tokens_per_block * c.head_dim) * esize;  // one layer's k and v
  for (auto [src, dst] : src_dst)
    if (src < 0 || src >= c.num_blocks || dst < 0 || dst >= c.num_blocks)
      fail("copy_kv_blocks: block {} -> {} is outside the pool of {}", src, dst, c.num_blocks);
  auto* base = static_cast<uint8_t*>(c.pool.data);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    uint8_t* layer = base + size_t(l) * size_t(c.layer_stride()) * esize;  // [blocks, 2, nkv, tpb, hd]
    for (auto [src, dst] : src_dst)
      if (src != dst) std::memcpy(layer + size_t(dst) * block, layer + size_t(src) * block, block);
  }
}

}  // namespace kiln
