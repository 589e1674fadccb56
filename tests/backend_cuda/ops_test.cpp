// Every op of the cuda backend against the cpu backend (the reference) on random inputs, per compute dtype, with
// the dtype's tolerance on ||cuda - cpu|| / ||cpu||. Inputs are rounded to the compute dtype first, so both
// backends compute from identical values. Skips with a message when there is no GPU.
#include <gtest/gtest.h>

#include <algorithm>

#include "backend_cuda/cuda_test_util.h"
#include "common/greedy_util.h"
#include "core/error.h"
#include "runtime/fusion_plan.h"

namespace kiln::test {
namespace {

// Runs ops as one plan, with the fusions the rules propose and the backend accepts; returns the plan.
StepOps run_plan(Backend& be, StepOps ops) {
  plan_fusions(ops, be);
  be.run(ops);
  return ops;
}

class CudaOps : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << no_gpu_message();
    dt = GetParam();
    gpu = cuda_backend(dt);
  }
  DType dt = DType::BF16;
  CpuBackend cpu{4};
  std::unique_ptr<Backend> gpu;
};

TEST_P(CudaOps, Embedding) {
  for (bool learned : {false, true}) {
    const int64_t V = 50, H = 72, P = 40;
    auto table = rnd(size_t(V * H), 1, 1.f, dt), pos_table = rnd(size_t(P * H), 2, 1.f, dt);
    std::vector<int32_t> ids{3, 0, 49, 17, 17, 8}, pos{0, 5, 39, 2, 3, 1};
    EmbeddingParams c{put_i32(cpu, ids), put(cpu, table, {V, H}, DType::F32), put_i32(cpu, pos),
                      learned ? put(cpu, pos_table, {P, H}, DType::F32) : Tensor(), cpu.alloc(DType::F32, {6, H})};
    EmbeddingParams g{put_i32(*gpu, ids), put(*gpu, table, {V, H}, dt), put_i32(*gpu, pos),
                      learned ? put(*gpu, pos_table, {P, H}, dt) : Tensor(), gpu->alloc(dt, {6, H})};
    cpu.embedding(c);
    gpu->embedding(g);
    EXPECT_LE(rel(get(*gpu, g.out), get(cpu, c.out)), tol_for(dt)) << "learned positions " << learned;
  }
}

TEST_P(CudaOps, EmbeddingRejectsOutOfRangeIds) {
  const int64_t V = 10, H = 16;
  EmbeddingParams g{put_i32(*gpu, {1, 10}), put(*gpu, rnd(size_t(V * H), 1, 1.f, dt), {V, H}, dt),
                    put_i32(*gpu, {0, 1}), Tensor(), gpu->alloc(dt, {2, H})};
  gpu->embedding(g);
  EXPECT_THROW(gpu->synchronize(), Error);
  gpu->synchronize();  // the error was reported once; the backend stays usable
}

TEST_P(CudaOps, NormsWithResidual) {
  struct Case {
    NormType type;
    bool add, bias;
    int64_t T, H;
  };
  for (Case k : {Case{NormType::RMSNorm, true, false, 5, 4096}, Case{NormType::RMSNorm, false, false, 3, 96},
                 Case{NormType::LayerNorm, true, true, 7, 200}, Case{NormType::LayerNorm, false, true, 1, 64}}) {
    auto res = rnd(size_t(k.T * k.H), 3, 2.f, dt), add = rnd(size_t(k.T * k.H), 4, 2.f, dt);
    auto w = rnd(size_t(k.H), 5, 1.f, dt), b = rnd(size_t(k.H), 6, 0.5f, dt);
    auto run = [&](Backend& be, DType t) {
      NormParams p{k.type, 1e-5, k.add ? put(be, add, {k.T, k.H}, t) : Tensor(), put(be, res, {k.T, k.H}, t),
                   put(be, w, {k.H}, t), k.bias ? put(be, b, {k.H}, t) : Tensor(), be.alloc(t, {k.T, k.H})};
      be.norm(p);
      return std::make_pair(get(be, p.out), get(be, p.residual));
    };
    auto [co, cr] = run(cpu, DType::F32);
    auto [go, gr] = run(*gpu, dt);
    EXPECT_LE(rel(go, co), tol_for(dt)) << "out, H=" << k.H;
    EXPECT_LE(rel(gr, cr), tol_for(dt)) << "residual, H=" << k.H;
  }
}

TEST_P(CudaOps, Linear) {
  // Few rows (GEMV), many rows (cuBLASLt), bias or not, compute-dtype or F32 output.
  for (int64_t T : {1, 3, 8, 37, 300}) {
    for (bool bias : {false, true}) {
      for (DType out_dt : {dt, DType::F32}) {
        const int64_t K = 136, N = 200;
        auto x = rnd(size_t(T * K), 7, 1.f, dt), w = rnd(size_t(N * K), 8, 0.1f, dt), b = rnd(size_t(N), 9, 1.f, dt);
        LinearParams c{put(cpu, x, {T, K}, DType::F32), put(cpu, w, {N, K}, DType::F32),
                       bias ? put(cpu, b, {N}, DType::F32) : Tensor(), cpu.alloc(DType::F32, {T, N})};
        LinearParams g{put(*gpu, x, {T, K}, dt), put(*gpu, w, {N, K}, dt), bias ? put(*gpu, b, {N}, dt) : Tensor(),
                       gpu->alloc(out_dt, {T, N})};
        cpu.linear(c);
        gpu->linear(g);
        EXPECT_LE(rel(get(*gpu, g.out), get(cpu, c.out)), tol_for(dt))
            << "T=" << T << " bias=" << bias << " out=" << dtype_name(out_dt);
      }
    }
  }
}

// A few-row GEMV followed by the SiLU-gated activation of its output runs fused when the plan says so (gate and up
// rows read by one warp): same result as the cpu's linear + activation, with and without bias. Without tactics the
// GEMV runs up to 4 rows; 8 rows take cuBLASLt and stay unfused.
TEST_P(CudaOps, GateUpGemvFusedWithActivation) {
  for (int64_t T : {1, 3, 8}) {
    for (bool bias : {false, true}) {
      const int64_t K = 256, I = 72;
      auto x = rnd(size_t(T * K), 50, 1.f, dt), w = rnd(size_t(2 * I * K), 51, 0.1f, dt), b = rnd(size_t(2 * I), 52, 1.f, dt);
      auto run = [&](Backend& be, DType t) {
        LinearParams lp{put(be, x, {T, K}, t), put(be, w, {2 * I, K}, t), bias ? put(be, b, {2 * I}, t) : Tensor(),
                        be.alloc(t, {T, 2 * I})};
        ActivationParams ap{ActKind::SiluGated, lp.out, be.alloc(t, {T, I})};
        StepOps ops;
        ops.add(lp, "linear(gate_up)");
        ops.add(ap, "silu_gated");
        ops = run_plan(be, std::move(ops));
        return std::make_pair(get(be, ap.out), ops.count(Fusion::SiluGate));
      };
      const auto [g, fused] = run(*gpu, dt);
      EXPECT_LE(rel(g, run(cpu, DType::F32).first), tol_for(dt)) << "T=" << T << " bias=" << bias;
      EXPECT_EQ(fused, T <= 4 ? 1 : 0) << "T=" << T;
    }
  }
}

// A decode layer's op sequence as one plan, where the cuda backend fuses: GEMV + residual add (into the next norm),
// norm as the next GEMV's prologue, gate/up GEMV + SiLU; then the final norm as the prologue of a float32 lm_head.
// Every intermediate output must still be written and match the cpu's unfused ops.
TEST_P(CudaOps, DecodeChainFusionsKeepEveryOutput) {
  for (int64_t T : {1, 3}) {
    const int64_t H = 256, I = 96, Nq = 384;
    auto xa = rnd(size_t(T * H), 60, 1.f, dt), res0 = rnd(size_t(T * H), 61, 2.f, dt);
    auto wd = rnd(size_t(H * H), 62, 0.1f, dt), wn1 = rnd(size_t(H), 63, 1.f, dt), wn2 = rnd(size_t(H), 64, 1.f, dt);
    auto wgu = rnd(size_t(2 * I * H), 65, 0.1f, dt), wdn = rnd(size_t(H * I), 66, 0.1f, dt);
    auto wq = rnd(size_t(Nq * H), 67, 0.1f, dt), bq = rnd(size_t(Nq), 68, 0.5f, dt);
    const int64_t V = 200;
    auto wlm = rnd(size_t(V * H), 69, 0.1f, dt);
    auto run = [&](Backend& be, DType t) {
      Tensor attn = put(be, xa, {T, H}, t), res = put(be, res0, {T, H}, t);
      Tensor proj = be.alloc(t, {T, H}), normed = be.alloc(t, {T, H}), mlp_in = be.alloc(t, {T, 2 * I});
      Tensor act = be.alloc(t, {T, I}), mlp_out = be.alloc(t, {T, H}), normed2 = be.alloc(t, {T, H});
      Tensor qkv = be.alloc(t, {T, Nq});
      Tensor Wd = put(be, wd, {H, H}, t), Wn1 = put(be, wn1, {H}, t), Wn2 = put(be, wn2, {H}, t);
      Tensor Wgu = put(be, wgu, {2 * I, H}, t), Wdn = put(be, wdn, {H, I}, t), Wq = put(be, wq, {Nq, H}, t);
      Tensor Bq = put(be, bq, {Nq}, t);
      StepOps ops;
      ops.add(LinearParams{attn, Wd, Tensor(), proj}, "linear(dense)");
      ops.add(NormParams{NormType::RMSNorm, 1e-5, proj, res, Wn1, Tensor(), normed}, "norm(post)");
      ops.add(LinearParams{normed, Wgu, Tensor(), mlp_in}, "linear(gate_up)");
      ops.add(ActivationParams{ActKind::SiluGated, mlp_in, act}, "silu_gated");
      ops.add(LinearParams{act, Wdn, Tensor(), mlp_out}, "linear(down)");
      ops.add(NormParams{NormType::RMSNorm, 1e-5, mlp_out, res, Wn2, Tensor(), normed2}, "norm(input)");
      ops.add(LinearParams{normed2, Wq, Bq, qkv}, "linear(qkv)");
      // The final norm and an lm_head with float32 logits.
      Tensor normed3 = be.alloc(t, {T, H}), logits = be.alloc(DType::F32, {T, V});
      Tensor Wlm = put(be, wlm, {V, H}, t);
      ops.add(NormParams{NormType::RMSNorm, 1e-5, Tensor(), res, Wn2, Tensor(), normed3}, "norm(final)");
      ops.add(LinearParams{normed3, Wlm, Tensor(), logits}, "linear(lm_head)");
      ops = run_plan(be, std::move(ops));
      if (&be != &cpu) {
        EXPECT_EQ(ops.count(Fusion::ResidualAdd), 2) << ops.describe();
        EXPECT_EQ(ops.count(Fusion::NormPrologue), 3) << ops.describe();
        EXPECT_EQ(ops.count(Fusion::SiluGate), 1) << ops.describe();
      }
      std::vector<std::vector<float>> outs;
      for (const Tensor* x : {&proj, &res, &normed, &mlp_in, &act, &mlp_out, &normed2, &qkv, &normed3, &logits})
        outs.push_back(get(be, *x));
      return outs;
    };
    auto c = run(cpu, DType::F32), g = run(*gpu, dt);
    const char* names[] = {"proj", "residual", "normed", "mlp_in", "act", "mlp_out", "normed2", "qkv", "normed3", "logits"};
    for (size_t i = 0; i < c.size(); ++i) EXPECT_LE(rel(g[i], c[i]), tol_for(dt)) << names[i] << " T=" << T;
  }
}

TEST_P(CudaOps, Activations) {
  const int64_t T = 9, I = 200;
  auto gu = rnd(size_t(T * 2 * I), 10, 4.f, dt), x = rnd(size_t(T * I), 11, 4.f, dt);
  for (ActKind kind : {ActKind::SiluGated, ActKind::GeluTanh}) {
    const auto& in = kind == ActKind::SiluGated ? gu : x;
    const int64_t w = kind == ActKind::SiluGated ? 2 * I : I;
    ActivationParams c{kind, put(cpu, in, {T, w}, DType::F32), cpu.alloc(DType::F32, {T, I})};
    ActivationParams g{kind, put(*gpu, in, {T, w}, dt), gpu->alloc(dt, {T, I})};
    cpu.activation(c);
    gpu->activation(g);
    EXPECT_LE(rel(get(*gpu, g.out), get(cpu, c.out)), tol_for(dt));
  }
}

TEST_P(CudaOps, GatherRowsAndArgmax) {
  const int64_t T = 11, H = 40;
  auto x = rnd(size_t(T * H), 12, 1.f, dt);
  std::vector<int32_t> rows{10, 0, 4, 4};
  GatherRowsParams c{put(cpu, x, {T, H}, DType::F32), put_i32(cpu, rows), cpu.alloc(DType::F32, {4, H})};
  GatherRowsParams g{put(*gpu, x, {T, H}, dt), put_i32(*gpu, rows), gpu->alloc(dt, {4, H})};
  cpu.gather_rows(c);
  gpu->gather_rows(g);
  EXPECT_EQ(get(*gpu, g.out), get(cpu, c.out));  // a copy: exact

  // One block per row (small V) and a vocabulary split over blocks (large V), ties inside and across slices.
  for (int64_t V : {1000, 128256}) {
    auto logits = rnd(size_t(3 * V), 13, 5.f, DType::F32);
    logits[size_t(V + 17)] = 9.f;  // row 1: a tie between 17 and V - 600, the lower index wins
    logits[size_t(2 * V - 600)] = 9.f;
    logits[size_t(3 * V - 1)] = 7.f;  // row 2: the last entry
    ArgmaxParams ca{put(cpu, logits, {3, V}, DType::F32), cpu.alloc(DType::I32, {3})};
    ArgmaxParams ga{put(*gpu, logits, {3, V}, DType::F32), gpu->alloc(DType::I32, {3})};
    cpu.argmax(ca);
    for (int rep = 0; rep < 2; ++rep) {  // twice: the split's arrival counters must have been reset
      gpu->argmax(ga);
      std::vector<int32_t> a(3), b(3);
      std::memcpy(a.data(), ca.out.data, 12);
      gpu->download(b.data(), ga.out, 12);
      EXPECT_EQ(a, b) << "V=" << V;
      EXPECT_EQ(b[1], 17) << "V=" << V;
      EXPECT_EQ(b[2], V - 1) << "V=" << V;
    }
  }
}

// The greedy choice after a few-row float32 GEMV (the lm_head) is made by the GEMV itself, with and without the
// final norm as its prologue: the same choice as an argmax over the logits it wrote, which still match the cpu's.
// Integer-valued weights and inputs make exact ties (duplicated weight rows): the lowest column must win, also
// across blocks; every launch twice, since the last block resets the keys and the counter for the next.
TEST_P(CudaOps, GreedyChoiceFusedIntoLmHead) {
  for (int64_t V : {1000, 128256}) {
    for (int64_t T : {1, 3, 8}) {
      const int64_t K = 64;
      std::vector<float> x(size_t(T * K)), w(size_t(V * K)), res = rnd(size_t(T * K), 71, 2.f, dt);
      for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i * 7 % 5) - 2);
      for (size_t i = 0; i < w.size(); ++i) w[i] = float(int((i * 2654435761u >> 7) % 9) - 4);
      const int64_t lo = V / 3, hi = V - 5;  // row hi duplicates row lo: an exact tie
      for (int64_t k = 0; k < K; ++k) w[size_t(lo * K + k)] = w[size_t(hi * K + k)] = 4 * x[size_t(k)];  // row 0's best
      auto wn = rnd(size_t(K), 72, 1.f, dt);
      for (bool norm : {false, true}) {
        Tensor X = put(*gpu, x, {T, K}, dt), W = put(*gpu, w, {V, K}, dt), logits = gpu->alloc(DType::F32, {T, V});
        Tensor R = put(*gpu, res, {T, K}, dt), Wn = put(*gpu, wn, {K}, dt), ids = gpu->alloc(DType::I32, {T});
        for (int rep = 0; rep < 2; ++rep) {
          StepOps ops;
          if (norm) ops.add(NormParams{NormType::RMSNorm, 1e-5, Tensor(), R, Wn, Tensor(), X}, "norm(final)");
          ops.add(LinearParams{X, W, Tensor(), logits}, "linear(lm_head)");
          ops.add(ArgmaxParams{logits, ids}, "argmax");
          ops = run_plan(*gpu, std::move(ops));
          EXPECT_EQ(ops.count(Fusion::Argmax), T <= 4 ? 1 : 0) << ops.describe();
          EXPECT_EQ(ops.count(Fusion::NormPrologue), norm && T <= 4 ? 1 : 0) << ops.describe();
          const std::string what = "V=" + std::to_string(V) + " T=" + std::to_string(T) + " norm=" + std::to_string(norm);
          const GreedyRows g = expect_first_argmax(*gpu, ids, logits, what);
          if (!norm) EXPECT_EQ(g.ids[0], lo) << "the tie's lower column, " << what;
        }
        // The logits themselves, against the cpu (norm, linear).
        Tensor cx = put(cpu, x, {T, K}, DType::F32), cl = cpu.alloc(DType::F32, {T, V});
        if (norm) cpu.norm({NormType::RMSNorm, 1e-5, Tensor(), put(cpu, res, {T, K}, DType::F32),
                            put(cpu, wn, {K}, DType::F32), Tensor(), cx});
        cpu.linear({cx, put(cpu, w, {V, K}, DType::F32), Tensor(), cl});
        EXPECT_LE(rel(get(*gpu, logits), get(cpu, cl)), tol_for(dt)) << "V=" << V << " T=" << T << " norm=" << norm;
      }
    }
  }
}

TEST_P(CudaOps, RandomWeightsMatchCpu) {
  Tensor c = cpu.random_weight({300, 7}, 42, 0.5f), g = gpu->random_weight({300, 7}, 42, 0.5f);
  auto cv = get(cpu, c), gv = get(*gpu, g);
  std::vector<uint16_t> h(cv.size());
  convert_from_f32(cv.data(), dt, h.data(), cv.size());  // the cpu values rounded to dt are the gpu's exactly
  convert_to_f32(dt, h.data(), cv.data(), cv.size());
  EXPECT_EQ(gv, cv);
  float mn = 1, mx = -1;
  for (float v : gv) mn = std::min(mn, v), mx = std::max(mx, v);
  EXPECT_LT(mn, -0.45f);
  EXPECT_GT(mx, 0.45f);
  EXPECT_NE(get(*gpu, gpu->random_weight({300, 7}, 43, 0.5f)), gv);  // another seed, other values
}

// RoPE (+ q/k norm) and the KV write, over a chunked batch: qkv in place and the cache must match.
TEST_P(CudaOps, RopeKvWrite) {
  struct Case {
    int64_t nh, nkv, hd;
    bool qk_norm;
    RopeScaling scaling;
  };
  for (Case k : {Case{4, 2, 32, false, RopeScaling::None}, Case{8, 2, 128, true, RopeScaling::Llama3},
                 Case{6, 2, 16, false, RopeScaling::Linear}, Case{4, 4, 24, true, RopeScaling::None}}) {
    HostMeta h = make_meta({{{0, 5}, {37, 1}, {3, 20}}, 16, 3});
    const int64_t row = (k.nh + 2 * k.nkv) * k.hd;
    auto qkv = rnd(size_t(h.T * row), 14, 2.f, dt);
    auto cache = rnd(size_t(1 * h.num_blocks * 2 * k.nkv * 16 * k.hd), 15, 1.f, dt);
    auto qn = rnd(size_t(k.hd), 16, 1.f, dt), kn = rnd(size_t(k.hd), 17, 1.f, dt);
    RopeConfig rope;
    rope.theta = 500000;
    rope.scaling = k.scaling;
    rope.factor = 8;
    rope.original_max_position = 64;
    auto run = [&](Backend& be, DType t, StepMeta& m) {
      RopeKvParams p;
      p.qkv = put(be, qkv, {h.T, row}, t);
      if (k.qk_norm) {
        p.q_norm = put(be, qn, {k.hd}, t);
        p.k_norm = put(be, kn, {k.hd}, t);
      }
      p.rope = rope;
      p.num_heads = k.nh;
      p.num_kv_heads = k.nkv;
      p.head_dim = k.hd;
      p.meta = &m;
      p.cache = make_cache(be, cache, 1, h.num_blocks, k.nkv, 16, k.hd, t);
      be.rope_kv(p);
      return std::make_pair(get(be, p.qkv), get(be, p.cache.pool));
    };
    StepMeta cm = upload_meta(cpu, h), gm = upload_meta(*gpu, h);
    auto [cq, cc] = run(cpu, DType::F32, cm);
    auto [gq, gc] = run(*gpu, dt, gm);
    EXPECT_LE(rel(gq, cq), tol_for(dt)) << "qkv, hd=" << k.hd;
    EXPECT_LE(rel(gc, cc), tol_for(dt)) << "cache, hd=" << k.hd;
  }
}

// Paged attention: chunked context (earlier chunks read from the cache), decode with long contexts (split-KV),
// GQA ratios 1..4, sliding windows, odd head dims.
// n sequences with one new token each and varied contexts (1 .. ~300), plus `extra` sequences.
std::vector<std::pair<int32_t, int32_t>> many_decodes(int n, int salt, std::vector<std::pair<int32_t, int32_t>> extra = {}) {
  std::vector<std::pair<int32_t, int32_t>> v;
  for (int i = 0; i < n; ++i) v.push_back({(i * 37 + salt * 11) % 300, 1});
  v.insert(v.end(), extra.begin(), extra.end());
  return v;
}

TEST_P(CudaOps, PagedAttention) {
  struct Case {
    int64_t nh, nkv, hd, window;
    std::vector<std::pair<int32_t, int32_t>> seqs;
  };
  std::vector<Case> cases = {
      {4, 2, 32, 0, {{0, 7}, {33, 1}, {5, 70}}},            // mixed step: prefill, decode, chunk after a prefix
      {8, 2, 128, 0, {{0, 130}}},                            // one long prompt, several key tiles
      {4, 1, 16, 16, {{0, 40}, {20, 9}}},                    // MQA + sliding window
      {6, 2, 24, 0, {{100, 3}, {0, 1}}},                     // GQA 3:1, head_dim 24
      {8, 2, 128, 0, {{1000, 1}, {70, 1}, {0, 1}, {4095, 1}}},  // decode only: split-KV
      {4, 4, 64, 0, {{300, 1}, {2, 1}}},                     // decode, MHA
      {4, 1, 16, 16, {{200, 1}, {5, 1}}},                    // decode with a window
      {6, 2, 48, 0, {{64, 64}, {0, 65}}},                    // tile edges, head_dim 48
      {2, 1, 256, 0, {{10, 40}, {90, 1}}},                   // head_dim 256
      {32, 8, 128, 0, many_decodes(40, 0)},                  // a batch that fills the GPU: tensor-core decode
      {12, 12, 64, 0, many_decodes(36, 1)},                  // ... MHA, head_dim 64
      {8, 2, 32, 24, many_decodes(150, 2)},                  // ... GQA 4:1, window, head_dim 32
      {16, 2, 64, 0, many_decodes(140, 3, {{5, 60}})},       // ... mixed with a prompt chunk
  };
  for (const Case& k : cases) {
    for (int64_t tpb : {16, 32}) {
      SCOPED_TRACE("nh=" + std::to_string(k.nh) + " nkv=" + std::to_string(k.nkv) + " hd=" + std::to_string(k.hd) +
                   " window=" + std::to_string(k.window) + " tpb=" + std::to_string(tpb));
      HostMeta h = make_meta({k.seqs, tpb, uint32_t(k.hd + tpb)});
      const int64_t row = (k.nh + 2 * k.nkv) * k.hd;
      auto qkv = rnd(size_t(h.T * row), 20, 1.f, dt);
      auto cache = rnd(size_t(2 * h.num_blocks * 2 * k.nkv * tpb * k.hd), 21, 1.f, dt);  // 2 layers
      auto run = [&](Backend& be, DType t) {
        StepMeta m = upload_meta(be, h);
        AttentionParams p;
        p.qkv = put(be, qkv, {h.T, row}, t);
        p.out = be.alloc(t, {h.T, k.nh * k.hd});
        p.num_heads = k.nh;
        p.num_kv_heads = k.nkv;
        p.head_dim = k.hd;
        p.sliding_window = k.window;
        p.scale = 2.0f / std::sqrt(float(k.hd));
        p.meta = &m;
        p.cache = make_cache(be, cache, 2, h.num_blocks, k.nkv, tpb, k.hd, t);
        p.layer = 1;
        be.attention(p);
        return get(be, p.out);
      };
      auto c = run(cpu, DType::F32);
      auto g = run(*gpu, dt);
      EXPECT_LE(rel(g, c), tol_for(dt));
    }
  }
}

// rope_kv then attention on a decode-only step, as one plan: the cuda backend fuses the two into the split-KV decode
// kernel. Attention output, qkv (rotated q, k) and the cache must match the cpu backend's unfused ops, and the fused
// result must agree with the cuda backend's own unfused one (the two ops run one by one).
TEST_P(CudaOps, RopeFusedIntoDecodeAttention) {
  struct Case {
    int64_t nh, nkv, hd, window;
    std::vector<std::pair<int32_t, int32_t>> seqs;
  };
  const std::vector<Case> cases = {
      {8, 2, 32, 0, {{0, 1}, {5, 1}, {63, 1}, {64, 1}, {300, 1}}},  // GQA 4:1, first token, block edges
      {4, 4, 64, 0, {{1000, 1}, {17, 1}}},                          // MHA, long context: several splits
      {32, 8, 128, 0, {{128, 1}}},                                   // the 8B shape at batch 1
      {8, 1, 128, 40, {{190, 1}, {3, 1}}},                           // MQA 8:1 with a window
      {2, 1, 256, 0, {{90, 1}, {700, 1}}},                           // head_dim 256
  };
  for (const Case& k : cases) {
    SCOPED_TRACE("nh=" + std::to_string(k.nh) + " nkv=" + std::to_string(k.nkv) + " hd=" + std::to_string(k.hd));
    const int64_t tpb = 16;
    HostMeta h = make_meta({k.seqs, tpb, uint32_t(k.hd)});
    const int64_t row = (k.nh + 2 * k.nkv) * k.hd;
    auto qkv = rnd(size_t(h.T * row), 30, 2.f, dt);
    auto cache = rnd(size_t(h.num_blocks * 2 * k.nkv * tpb * k.hd), 31, 1.f, dt);
    RopeConfig rope;
    rope.theta = 500000;
    rope.scaling = RopeScaling::Llama3;
    rope.factor = 8;
    rope.original_max_position = 64;
    struct Out {
      std::vector<float> attn, qkv, cache;
    };
    auto run = [&](Backend& be, DType t, bool split_ops) {
      StepMeta m = upload_meta(be, h);
      RopeKvParams r;
      r.qkv = put(be, qkv, {h.T, row}, t);
      r.rope = rope;
      r.num_heads = k.nh;
      r.num_kv_heads = k.nkv;
      r.head_dim = k.hd;
      r.meta = &m;
      r.cache = make_cache(be, cache, 1, h.num_blocks, k.nkv, tpb, k.hd, t);
      AttentionParams a;
      a.qkv = r.qkv;
      a.out = be.alloc(t, {h.T, k.nh * k.hd});
      a.num_heads = k.nh;
      a.num_kv_heads = k.nkv;
      a.head_dim = k.hd;
      a.sliding_window = k.window;
      a.scale = 1.0f / std::sqrt(float(k.hd));
      a.meta = &m;
      a.cache = r.cache;
      if (split_ops) {
        be.rope_kv(r);
        be.attention(a);
      } else {
        StepOps ops;
        ops.add(r, "rope_kv");
        ops.add(a, "attention");
        ops = run_plan(be, std::move(ops));
        if (&be != &cpu) EXPECT_EQ(ops.count(Fusion::RopeAttention), 1) << ops.describe();
      }
      return Out{get(be, a.out), get(be, r.qkv), get(be, r.cache.pool)};
    };
    const Out c = run(cpu, DType::F32, false);
    const Out fused = run(*gpu, dt, false), plain = run(*gpu, dt, true);
    EXPECT_LE(rel(fused.attn, c.attn), tol_for(dt));
    EXPECT_LE(rel(fused.qkv, c.qkv), tol_for(dt));
    EXPECT_LE(rel(fused.cache, c.cache), tol_for(dt));
    EXPECT_LE(rel(fused.qkv, plain.qkv), 1e-4);  // the same arithmetic (up to fp32 contraction)
    EXPECT_LE(rel(fused.cache, plain.cache), 1e-4);
    EXPECT_LE(rel(fused.attn, plain.attn), 1e-4);
  }
}

TEST_P(CudaOps, MixtureOfExperts) {
  const int64_t H = 64, I = 96, E = 4, K = 2;
  for (int64_t T : {1, 5, 37}) {
    auto x = rnd(size_t(T * H), 30, 1.f, dt), router = rnd(size_t(E * H), 31, 0.5f, dt);
    auto gu = rnd(size_t(E * 2 * I * H), 32, 0.2f, dt), down = rnd(size_t(E * H * I), 33, 0.2f, dt);
    auto run = [&](Backend& be, DType t) {
      MoeParams p{put(be, x, {T, H}, t), put(be, router, {E, H}, t), put(be, gu, {E, 2 * I, H}, t),
                  put(be, down, {E, H, I}, t), K, be.alloc(t, {T, H})};
      be.moe(p);
      return get(be, p.out);
    };
    EXPECT_LE(rel(run(*gpu, dt), run(cpu, DType::F32)), tol_for(dt)) << "T=" << T;
  }
}

TEST_P(CudaOps, CopyKvBlocks) {
  const int64_t L = 2, B = 6, nkv = 2, tpb = 4, hd = 8;
  auto v = rnd(size_t(L * B * 2 * nkv * tpb * hd), 40, 1.f, dt);
  KvCacheDesc c = make_cache(cpu, v, L, B, nkv, tpb, hd, DType::F32), g = make_cache(*gpu, v, L, B, nkv, tpb, hd, dt);
  cpu.copy_kv_blocks(c, {{1, 4}, {4, 0}});
  gpu->copy_kv_blocks(g, {{1, 4}, {4, 0}});
  EXPECT_EQ(get(*gpu, g.pool), get(cpu, c.pool));
  EXPECT_THROW(gpu->copy_kv_blocks(g, {{0, 6}}), Error);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaOps, ::testing::Values(DType::F16, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace kiln::test
