// The cuda backend's batch-invariant mode at the op level (src/backend/cuda/batch_invariant.h), per compute dtype:
//  - linear: a row's output is bit-identical whatever the batch around it (M = 1, 5, 9, 37, 300, the row at
//    different places in the batch), for the planner's GEMM shapes (one algorithm per shape) and an unplanned one
//    (the runtime's per-shape choice); within tol_for of the cpu backend;
//  - attention: a query position gets bit-identical output computed as a whole prompt, a decode row, a later
//    prompt chunk, or inside a batch with other sequences (contexts long enough for several splits; a sliding
//    window); within tol_for of the cpu backend;
//  - sampling: top-p draws (and their log-probs) are the same on every run, and the cpu backend's ids.
// Skips without a GPU.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "backend_cuda/cuda_test_util.h"
#include "common/sampling_util.h"
#ifdef KILN_WITH_CUDA
#include "backend/cuda/gemm.h"
#endif

namespace kiln::test {
namespace {

// A Llama-shaped model config (hidden 64 * heads, heads of head_dim) as the backend's configure takes it.
BackendConfig invariant_info(DType dt, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t max_num_tokens) {
  const nlohmann::json hf = {{"architectures", {"LlamaForCausalLM"}},
                             {"hidden_size", heads * head_dim},
                             {"intermediate_size", 512},
                             {"num_hidden_layers", 1},
                             {"num_attention_heads", heads},
                             {"num_key_value_heads", kv_heads},
                             {"vocab_size", 1000},
                             {"max_position_embeddings", 2048},
                             {"rms_norm_eps", 1e-5},
                             {"torch_dtype", "float16"}};
  EngineInfo info;
  info.model = config_from_hf(hf, "config.json");
  info.target = "cuda";
#ifdef KILN_WITH_CUDA
  info.gpu_arch = cuda_device_arch();
#endif
  info.compute_dtype = dt;
  info.limits.max_seq_len = 1024;
  info.limits.max_num_tokens = max_num_tokens;
  resolve_limits(info.limits, info.model);
  info.batch_invariant = true;
  return backend_config(info);
}

// The raw bytes of a backend tensor.
std::vector<uint8_t> raw(Backend& be, const Tensor& t) {
  std::vector<uint8_t> b(t.nbytes());
  be.download(b.data(), t, b.size());
  return b;
}

class CudaInvariantOps : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << no_gpu_message();
    dt = GetParam();
  }
  DType dt = DType::F16;
  CpuBackend cpu{4};
};

TEST_P(CudaInvariantOps, LinearRowsDoNotDependOnTheBatch) {
  BackendConfig info = invariant_info(dt, 4, 2, 64, 512);  // H 256: qkv 512 x 256, dense, gate_up 1024 x 256, down
#ifdef KILN_WITH_CUDA
  info.tactics = plan_cuda_engine(info, dt).tactics;
#endif
  auto gpu = cuda_backend(dt);
  gpu->configure(info);
  struct Shape {
    int64_t N, K;
    bool bias;
    DType out;
    bool planned;
  };
  const Shape shapes[] = {{512, 256, false, dt, true},           // qkv
                          {256, 512, false, dt, true},           // down
                          {1000, 256, false, DType::F32, true},  // lm_head, float32 logits
                          {200, 136, true, dt, false}};          // not in the engine: chosen at first use
  const int64_t kRows = 300;
  for (const Shape& s : shapes) {
    SCOPED_TRACE("N=" + std::to_string(s.N) + " K=" + std::to_string(s.K));
#ifdef KILN_WITH_CUDA
    if (s.planned) {
      const auto& list = info.tactics["gemm"][cuda::gemm_key(s.N, s.K, dt, s.out, s.bias)];
      ASSERT_EQ(list.size(), 1u) << "one algorithm for every row count";
      EXPECT_EQ(list[0]["kind"], "cublaslt");
    }
#endif
    auto x = rnd(size_t(kRows * s.K), 70, 1.f, dt), w = rnd(size_t(s.N * s.K), 71, 0.1f, dt);
    auto b = rnd(size_t(s.N), 72, 1.f, dt);
    Tensor W = put(*gpu, w, {s.N, s.K}, dt), B = s.bias ? put(*gpu, b, {s.N}, dt) : Tensor();
    auto rows = [&](int64_t first, int64_t M) {  // the output of x rows [first, first + M) as one batch
      std::vector<float> xs(x.begin() + first * s.K, x.begin() + (first + M) * s.K);
      LinearParams p{put(*gpu, xs, {M, s.K}, dt), W, B, gpu->alloc(s.out, {M, s.N})};
      gpu->linear(p);
      return raw(*gpu, p.out);
    };
    const std::vector<uint8_t> all = rows(0, kRows);
    const size_t row_bytes = size_t(s.N) * dtype_size(s.out);
    for (int64_t M : {1, 5, 9, 37, 300}) {
      for (int64_t first : {int64_t(0), (kRows - M) / 2, kRows - M}) {
        const std::vector<uint8_t> got = rows(first, M);
        EXPECT_EQ(std::memcmp(got.data(), all.data() + size_t(first) * row_bytes, got.size()), 0)
            << "rows " << first << ".." << first + M - 1 << " as a batch of " << M << " differ from the batch of "
            << kRows;
      }
    }
    // against the cpu backend (the reference), 37 rows
    const int64_t M = 37;
    std::vector<float> xs(x.begin(), x.begin() + M * s.K);
    LinearParams c{put(cpu, xs, {M, s.K}, DType::F32), put(cpu, w, {s.N, s.K}, DType::F32),
                   s.bias ? put(cpu, b, {s.N}, DType::F32) : Tensor(), cpu.alloc(DType::F32, {M, s.N})};
    cpu.linear(c);
    LinearParams g{put(*gpu, xs, {M, s.K}, dt), W, B, gpu->alloc(s.out, {M, s.N})};
    gpu->linear(g);
    EXPECT_LE(rel(get(*gpu, g.out), get(cpu, c.out)), tol_for(dt));
  }
}

// Sequence contents: K, V and q of content c at position p are fixed values (random_uniform of (c, p, head, dim),
// rounded to dt), wherever the sequence's blocks are and whatever else is in the step.
struct AttnCase {
  int64_t nh, nkv, hd, window;
};

float content_value(int content, int what, int64_t pos, int64_t head, int64_t d, int64_t hd, DType dt) {
  float v = 0.5f * random_uniform(uint64_t(content * 3 + what), uint64_t((pos * 64 + head) * hd + d));
  uint16_t h;
  convert_from_f32(&v, dt, &h, 1);
  convert_to_f32(dt, &h, &v, 1);
  return v;
}

// Runs attention over one step of sequences {content, cached, new} on `be` (tensors in dt, values rounded to
// round_dt) and returns each new token's output row (as floats: equal bits give equal floats) keyed by (content,
// position).
std::map<std::pair<int, int32_t>, std::vector<float>> attend(Backend& be, DType dt, DType round_dt, const AttnCase& a,
                                                            const std::vector<std::array<int32_t, 3>>& seqs) {
  MetaSpec spec;
  for (auto& s : seqs) spec.seqs.push_back({s[1], s[2]});
  spec.tpb = 16;
  spec.seed = uint32_t(seqs.size() * 31 + seqs[0][1]);
  const HostMeta h = make_meta(spec);
  const int64_t row = (a.nh + 2 * a.nkv) * a.hd;
  std::vector<float> pool(size_t(h.num_blocks * 2 * a.nkv * spec.tpb * a.hd), 0.f), qkv(size_t(h.T * row), 0.f);
  for (int32_t s = 0; s < h.S; ++s) {
    const int c = seqs[size_t(s)][0];
    for (int32_t p = 0; p < seqs[size_t(s)][1] + seqs[size_t(s)][2]; ++p) {
      const int64_t blk = h.block_tables[size_t(s * h.max_blocks + p / spec.tpb)];
      for (int kv = 0; kv < 2; ++kv)
        for (int64_t kh = 0; kh < a.nkv; ++kh)
          for (int64_t d = 0; d < a.hd; ++d)
            pool[size_t((((blk * 2 + kv) * a.nkv + kh) * spec.tpb + p % spec.tpb) * a.hd + d)] =
                content_value(c, 1 + kv, p, kh, d, a.hd, round_dt);
    }
  }
  for (int32_t t = 0; t < h.T; ++t) {
    const int c = seqs[size_t(h.token_seq[size_t(t)])][0];
    for (int64_t i = 0; i < a.nh * a.hd; ++i)
      qkv[size_t(t * row + i)] = content_value(c, 0, h.positions[size_t(t)], i / a.hd, i % a.hd, a.hd, round_dt);
  }
  const StepMeta meta = upload_meta(be, h);
  AttentionParams p;
  p.qkv = put(be, qkv, {h.T, row}, dt);
  p.out = be.alloc(dt, {h.T, a.nh * a.hd});
  p.num_heads = a.nh;
  p.num_kv_heads = a.nkv;
  p.head_dim = a.hd;
  p.sliding_window = a.window;
  p.scale = 1.0f / std::sqrt(float(a.hd));
  p.meta = &meta;
  p.cache = make_cache(be, pool, 1, h.num_blocks, a.nkv, spec.tpb, a.hd, dt);
  be.attention(p);
  const std::vector<float> out = get(be, p.out);
  std::map<std::pair<int, int32_t>, std::vector<float>> rows;
  for (int32_t t = 0; t < h.T; ++t) {
    const int c = seqs[size_t(h.token_seq[size_t(t)])][0];
    rows[{c, h.positions[size_t(t)]}] =
        std::vector<float>(out.begin() + t * a.nh * a.hd, out.begin() + (t + 1) * a.nh * a.hd);
  }
  return rows;
}

TEST_P(CudaInvariantOps, AttentionRowDoesNotDependOnHowItIsComputed) {
  // GQA 4:1 with head_dim 64; one kv head per query head with head_dim 24 (padded lanes) and a sliding window
  // wider than a split.
  for (const AttnCase a : {AttnCase{8, 2, 64, 0}, AttnCase{4, 4, 24, 300}}) {
    SCOPED_TRACE("nh=" + std::to_string(a.nh) + " nkv=" + std::to_string(a.nkv) + " hd=" + std::to_string(a.hd) +
                 " window=" + std::to_string(a.window));
    auto gpu = cuda_backend(dt);
    gpu->configure(invariant_info(dt, a.nh, a.nkv, a.hd, 1024));
    const int X = 1, Y = 2, Z = 3;
    const int32_t L = 600;  // positions up to 599: three splits of 256 keys
    const auto whole = attend(*gpu, dt, dt, a, {{X, 0, L}});  // the whole prompt at once
    auto expect_same = [&](const std::map<std::pair<int, int32_t>, std::vector<float>>& got, const char* how) {
      int compared = 0;
      for (auto& [key, v] : got) {
        if (key.first != X) continue;
        EXPECT_EQ(v, whole.at(key)) << "position " << key.second << " computed " << how;
        ++compared;
      }
      EXPECT_GT(compared, 0) << how;
    };
    expect_same(attend(*gpu, dt, dt, a, {{X, L - 1, 1}}), "as a decode row alone");
    expect_same(attend(*gpu, dt, dt, a, {{Y, 250, 1}, {X, L - 1, 1}, {Z, 10, 5}}), "as a decode row in a mixed batch");
    expect_same(attend(*gpu, dt, dt, a, {{X, 0, 256}}), "in the first chunk of a prompt");
    expect_same(attend(*gpu, dt, dt, a, {{X, 256, 100}}), "in a middle chunk");
    expect_same(attend(*gpu, dt, dt, a, {{Y, 0, 37}, {X, 400, L - 400}, {Z, 700, 1}}),
                "in a chunk among other sequences");
    expect_same(attend(*gpu, dt, dt, a, {{Z, 500, 3}, {X, 509, 1}, {Y, 30, 40}, {X + 10, 0, 5}}),
                "as one row among other sequences' rows");
    // against the cpu backend: a few rows of the whole prompt
    const auto ref = attend(cpu, DType::F32, dt, a, {{X, 0, L}});
    for (int32_t pos : {0, 17, 255, 256, 511, 599}) {
      EXPECT_LE(rel(whole.at({X, pos}), ref.at({X, pos})), tol_for(dt)) << "position " << pos;
    }
  }
}

// Top-p over a large vocabulary whose weights fall into few histogram bins (heavy atomic traffic on the same bins):
// every run draws the same tokens with the same log-probs, the cpu backend's tokens.
TEST(CudaInvariantSampling, TopPDrawsAreTheSameOnEveryRun) {
  if (!have_gpu()) GTEST_SKIP() << no_gpu_message();
  CpuBackend cpu{4};
  auto gpu = cuda_backend(DType::BF16);
  SampleCase c;
  c.V = 128256;
  std::mt19937 g(5);
  std::normal_distribution<float> n(0.f, 1.5f);
  c.logits.resize(size_t(4 * c.V));
  for (auto& l : c.logits) l = n(g);
  const float top_ps[] = {0.5f, 0.9f, 0.95f, 0.99f};
  for (int i = 0; i < 64; ++i) {
    SampleRowParams p;
    p.temperature = 0.7f + 0.1f * float(i % 7);
    p.top_p = top_ps[i % 4];
    p.want_log_prob = true;
    p.seed = 77 + uint64_t(i);
    p.counter = uint64_t(i);
    p.logits_row = i % 4;
    c.rows.push_back(p);
  }
  const auto first = run_sample(*gpu, c);
  for (int rep = 0; rep < 10; ++rep) {
    const auto again = run_sample(*gpu, c);
    for (size_t i = 0; i < first.size(); ++i) {
      EXPECT_EQ(again[i].id, first[i].id) << "row " << i << ", run " << rep;
      EXPECT_EQ(again[i].log_prob, first[i].log_prob) << "row " << i << ", run " << rep;
    }
  }
  const auto ref = run_sample(cpu, c);
  for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(first[i].id, ref[i].id) << "row " << i;
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaInvariantOps, ::testing::Values(DType::F16, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace kiln::test
