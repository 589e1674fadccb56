// cuda engines end to end: the build records the GPU architecture and measured GEMM tactics; an engine is
// refused on another architecture or without a GPU; synthetic engines (random weights made at load) agree with
// the cpu backend's synthetic engine; decode steps (CUDA graphs, split-KV decode kernel) agree with a one-shot
// prefill of the same tokens; batched decode agrees with single-sequence decode; a greedy step's fused choice is
// the argmax of its logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "backend_cuda/cuda_test_util.h"
#include "common/greedy_util.h"
#include "build/engine_builder.h"
#include "core/error.h"
#include "io/json_file.h"
#include "runtime/generate.h"
#include "runtime/backend_factory.h"
#include "runtime/kv_cache.h"
#include "runtime/model_runner.h"

namespace kiln::test {
namespace {

// A small Llama-shaped model (GQA 4:1, llama3 RoPE scaling) for synthetic engines.
std::string write_config(const TempDir& d) {
  const std::string p = d / "config.json";
  std::ofstream(p) << R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
    "num_hidden_layers": 3, "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 1000,
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 256, "rope_type": "llama3"},
    "torch_dtype": "bfloat16"})";
  return p;
}

std::string build_synthetic(const TempDir& d, const std::string& target, const std::string& name) {
  BuildOptions o;
  o.synthetic_config = write_config(d);
  o.output_dir = d / name;
  o.target = target;
  o.limits.max_batch_size = 4;
  o.limits.max_seq_len = 512;
  o.limits.max_num_tokens = 256;
  o.plan = target_planner(target);
  build_engine(o);
  return o.output_dir;
}

std::vector<int32_t> prompt_ids(int n, int salt) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back((i * 37 + salt * 101 + 11) % 1000);
  return v;
}

// Runs without a GPU only (CI): a cuda engine must be refused with a clear message.
TEST(CudaEngineWithoutGpu, LoadIsRefused) {
  if (have_gpu()) GTEST_SKIP() << "a GPU is present: covered by the GPU tests";
  TempDir d;
  std::filesystem::create_directories(d / "engine");
  EngineInfo info;
  info.model = config_from_hf(read_json_file(write_config(d)), "config.json");
  info.target = "cuda";
  info.gpu_arch = "sm_90";
  info.compute_dtype = DType::BF16;
  info.synthetic = true;
  resolve_limits(info.limits, info.model);
  write_json_file(d / "engine/engine.json", engine_info_to_json(info));
  try {
    Engine::load(d / "engine");
    FAIL() << "a cuda engine loaded without a GPU";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_TRUE(m.find("GPU") != std::string::npos || m.find("CUDA") != std::string::npos) << m;
  }
}

class CudaEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << no_gpu_message();
  }
};

TEST_F(CudaEngine, BuildRecordsArchitectureAndTactics) {
  TempDir d;
  const std::string dir = build_synthetic(d, "cuda", "engine");
  auto j = read_json_file(dir + "/engine.json");
#ifdef KILN_WITH_CUDA
  EXPECT_EQ(j["gpu_arch"].get<std::string>(), cuda_device_arch());
#endif
  EXPECT_TRUE(j["synthetic"].get<bool>());
  EXPECT_FALSE(std::filesystem::exists(dir + "/rank0.safetensors"));
  auto& g = j["tactics"]["gemm"];
  // qkv (N = (8 + 2 * 2) * 32 = 384, K = 256): buckets 1, 2, 4, ..., 256 (= max_num_tokens)
  ASSERT_TRUE(g.contains("n384_k256_bfloat16_bfloat16")) << g.dump();
  auto& qkv = g["n384_k256_bfloat16_bfloat16"];
  ASSERT_EQ(qkv.size(), 9u);
  EXPECT_EQ(qkv.back()["max_m"].get<int64_t>(), 256);
  for (auto& b : qkv) EXPECT_TRUE(b["kind"] == "gemv" || b["algo"].is_string()) << b.dump();
  EXPECT_TRUE(g.contains("n1000_k256_bfloat16_float32"));  // lm_head, F32 logits
  EXPECT_TRUE(g.contains("n1024_k256_bfloat16_bfloat16"));  // gate_up
  EXPECT_TRUE(g.contains("n256_k512_bfloat16_bfloat16"));   // down
}

TEST_F(CudaEngine, RefusedOnAnotherArchitecture) {
  TempDir d;
  const std::string dir = build_synthetic(d, "cuda", "engine");
  auto j = read_json_file(dir + "/engine.json");
  j["gpu_arch"] = "sm_80";
  write_json_file(dir + "/engine.json", j);
  try {
    Engine::load(dir);
    FAIL() << "an sm_80 engine loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sm_80"), std::string::npos) << e.what();
  }
}

TEST_F(CudaEngine, SyntheticEngineMatchesCpuSyntheticEngine) {
  TempDir d;
  auto g = Engine::load(build_synthetic(d, "cuda", "gpu"));
  auto c = Engine::load(build_synthetic(d, "cpu", "cpu"));
  GreedyOptions o;
  o.max_new_tokens = 4;
  o.keep_logits = true;
  auto rg = generate_greedy(*g, prompt_ids(50, 1), o);
  auto rc = generate_greedy(*c, prompt_ids(50, 1), o);
  // The cpu keeps the random weights in fp32, the gpu rounds them to bf16: bf16 tolerance.
  ASSERT_EQ(rg.context_logits.size(), rc.context_logits.size());
  const size_t V = 1000;
  for (size_t r = 0; r < rg.context_logits.size() / V; ++r)
    EXPECT_LE(rel_err(rg.context_logits.data() + r * V, rc.context_logits.data() + r * V, V), 4e-2) << "row " << r;
}

// Decode (graphs, decode kernel) vs one prefill over prompt + generated tokens (context kernel, no graph).
TEST_F(CudaEngine, DecodeAgreesWithPrefill) {
  TempDir d;
  auto e = Engine::load(build_synthetic(d, "cuda", "engine"));
  const auto prompt = prompt_ids(70, 2);
  GreedyOptions o;
  o.max_new_tokens = 40;
  o.keep_logits = true;
  auto r = generate_greedy(*e, prompt, o);
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), r.output_ids.begin(), r.output_ids.end() - 1);
  const int64_t tpb = 16, nb = (int64_t(all.size()) + tpb - 1) / tpb;
  ModelRunner runner(*e, allocate_kv_cache(e->backend(), e->model(), nb, tpb));
  std::vector<int32_t> table(static_cast<size_t>(nb));
  for (int64_t i = 0; i < nb; ++i) table[size_t(i)] = int32_t(nb - 1 - i);  // reversed: paging matters
  SeqStep s;
  s.tokens = all;
  s.block_table = &table;
  s.all_logits = true;
  Tensor logits = runner.step({s});
  const int64_t V = 1000, P = int64_t(prompt.size());
  std::vector<float> host(size_t(logits.numel()));
  e->backend().download(host.data(), logits, host.size() * 4);
  for (int64_t j = 0; j < o.max_new_tokens; ++j)
    EXPECT_LE(rel_err(r.generation_logits.data() + j * V, host.data() + (P - 1 + j) * V, size_t(V)), 2e-2)
        << "generation step " << j;
}

// Three sequences decoded together (a graph for batch 3, different context lengths) vs each alone.
TEST_F(CudaEngine, BatchedDecodeAgreesWithSingle) {
  TempDir d;
  auto e = Engine::load(build_synthetic(d, "cuda", "engine"));
  const int steps = 12, tpb = 16;
  std::vector<std::vector<int32_t>> prompts{prompt_ids(5, 3), prompt_ids(130, 4), prompt_ids(33, 5)};
  std::vector<std::vector<float>> single;  // per sequence: the logits of its decode steps
  for (auto& p : prompts) {
    GreedyOptions o;
    o.max_new_tokens = steps + 1;
    o.keep_logits = true;
    auto r = generate_greedy(*e, p, o);
    single.push_back(std::vector<float>(r.generation_logits.begin() + 1000, r.generation_logits.end()));
    p.insert(p.end(), r.output_ids.begin(), r.output_ids.end());  // prompt + the tokens greedy chose
  }
  const int64_t per_seq = (130 + steps + 1 + tpb) / tpb + 1;
  ModelRunner runner(*e, allocate_kv_cache(e->backend(), e->model(), 3 * per_seq, tpb));
  std::vector<std::vector<int32_t>> tables(3);
  for (int s = 0; s < 3; ++s)
    for (int64_t b = 0; b < per_seq; ++b) tables[size_t(s)].push_back(int32_t(b * 3 + s));  // interleaved blocks
  std::vector<int32_t> plen{5, 130, 33};
  std::vector<SeqStep> pre(3);
  for (int s = 0; s < 3; ++s) {
    pre[size_t(s)].tokens.assign(prompts[size_t(s)].begin(), prompts[size_t(s)].begin() + plen[size_t(s)]);
    pre[size_t(s)].block_table = &tables[size_t(s)];
  }
  runner.step(pre);  // the three prompts prefilled together
  for (int j = 0; j < steps; ++j) {
    std::vector<SeqStep> st(3);
    for (int s = 0; s < 3; ++s) {
      st[size_t(s)].tokens = {prompts[size_t(s)][size_t(plen[size_t(s)] + j)]};  // generated token j
      st[size_t(s)].num_cached = plen[size_t(s)] + j;
      st[size_t(s)].block_table = &tables[size_t(s)];
    }
    Tensor logits = runner.step(st);
    std::vector<float> host(size_t(logits.numel()));
    e->backend().download(host.data(), logits, host.size() * 4);
    for (int s = 0; s < 3; ++s)
      EXPECT_LE(rel_err(host.data() + s * 1000, single[size_t(s)].data() + int64_t(j) * 1000, 1000), 2e-2)
          << "sequence " << s << " step " << j;
  }
}

// step_greedy (the choice inside the step's graph, fused into the lm_head GEMV with the final norm as its
// prologue) for three sequences: each step's choices are the argmax of the logits it left, the next step runs on
// them (ids_from_sample), and the logits match a plain step() (norm, gather, lm_head) given the same tokens.
TEST_F(CudaEngine, GreedyStepChoosesTheArgmaxOfItsLogits) {
  TempDir d;
  auto e = Engine::load(build_synthetic(d, "cuda", "engine"));
  Backend& be = e->backend();
  const int steps = 8, tpb = 16, V = 1000;
  std::vector<int32_t> plen{9, 70, 33};
  const int64_t per_seq = (70 + steps + tpb) / tpb + 1;
  std::vector<std::vector<int32_t>> tables(3);
  for (int s = 0; s < 3; ++s)
    for (int64_t b = 0; b < per_seq; ++b) tables[size_t(s)].push_back(int32_t(b * 3 + s));
  ModelRunner greedy(*e, allocate_kv_cache(be, e->model(), 3 * per_seq, tpb));
  ModelRunner plain(*e, allocate_kv_cache(be, e->model(), 3 * per_seq, tpb));
  std::vector<SeqStep> st(3);
  for (int s = 0; s < 3; ++s) {
    st[size_t(s)].tokens = prompt_ids(plen[size_t(s)], s + 6);
    st[size_t(s)].block_table = &tables[size_t(s)];
  }
  Tensor logits;
  Tensor ids = greedy.step_greedy(st, false, &logits);  // the prompts: gathered rows, then the fused choice
  std::vector<int32_t> chosen = expect_first_argmax(be, ids, logits, "prefill").ids;
  plain.step(st);
  for (int j = 0; j < steps; ++j) {
    for (int s = 0; s < 3; ++s) {
      st[size_t(s)].num_cached += int32_t(st[size_t(s)].tokens.size());
      st[size_t(s)].tokens = {chosen[size_t(s)]};
    }
    ids = greedy.step_greedy(st, /*ids_from_sample=*/true, &logits);  // a graph from the second step on
    auto [next, l] = expect_first_argmax(be, ids, logits, "decode step " + std::to_string(j));
    Tensor ref = plain.step(st);
    std::vector<float> r(size_t(3 * V));
    be.download(r.data(), ref, r.size() * 4);
    for (int s = 0; s < 3; ++s)
      EXPECT_LE(rel_err(l.data() + s * V, r.data() + s * V, V), 1e-2) << "step " << j << " seq " << s;
    chosen = next;
  }
}

}  // namespace
}  // namespace kiln::test
