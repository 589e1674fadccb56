// Every fixture model through convert -> build --target cuda -> greedy generation (the code paths of `kiln
// convert`, `kiln build` and `kiln run --logits-out`, in process), against transformers' float32 goldens:
// per-row relative logit error within 5e-3 (float16) / 2e-2 (bfloat16), and the same argmax wherever the
// reference's top-1/top-2 gap exceeds 0.05. Decode steps run through CUDA graphs (the runner records them).
#include <gtest/gtest.h>

#include <map>

#include "backend_cuda/cuda_test_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "runtime/generate.h"

namespace kiln::test {
namespace {

// Largest minus second-largest value of a row.
float top_gap(const float* x, int64_t V) {
  float a = -INFINITY, b = -INFINITY;
  for (int64_t v = 0; v < V; ++v) {
    if (x[v] > a) {
      b = a;
      a = x[v];
    } else if (x[v] > b) {
      b = x[v];
    }
  }
  return a - b;
}

int64_t argmax_of(const float* x, int64_t V) { return std::max_element(x, x + V) - x; }

void check_model(const std::string& model, const std::string& dtype, double tol) {
  auto engine = Engine::load(cuda_engine(model, dtype));
  auto meta = read_json_file(model_dir(model) + "/golden.json");
  SafetensorsFile golden(model_dir(model) + "/golden.safetensors");
  auto cases = meta.contains("cases") ? meta["cases"] : meta["samples"];
  int rows_checked = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(model + " " + dtype + " case " + std::to_string(i));
    if (!golden.has("logits_" + std::to_string(i))) continue;
    const int64_t P = cases[i]["prompt_len"].get<int64_t>();
    const TensorView& toks = golden.get("tokens_" + std::to_string(i));
    const int N = int(toks.numel() - P);
    const auto* tk = static_cast<const int32_t*>(toks.data);
    GreedyOptions g;
    g.max_new_tokens = N;
    g.keep_logits = true;
    auto r = generate_greedy(*engine, std::vector<int32_t>(tk, tk + P), g);
    ASSERT_EQ(int(r.output_ids.size()), N);
    const TensorView& ref = golden.get("logits_" + std::to_string(i));
    const int64_t V = ref.shape[1];
    const auto* rl = static_cast<const float*>(ref.data);
    auto check_row = [&](const float* got, const float* want, const std::string& where) {
      EXPECT_LE(rel_err(got, want, size_t(V)), tol) << where;
      if (top_gap(want, V) > 0.05f) {
        EXPECT_EQ(argmax_of(got, V), argmax_of(want, V)) << where;
      }
      ++rows_checked;
    };
    for (int64_t p = 0; p < P; ++p) check_row(r.context_logits.data() + p * V, rl + p * V, "context row " + std::to_string(p));
    // Generation row j is compared with the reference at position P-1+j while the sequences agree.
    for (int j = 0; j < N; ++j) {
      check_row(r.generation_logits.data() + int64_t(j) * V, rl + (P - 1 + j) * V, "generation row " + std::to_string(j));
      if (r.output_ids[size_t(j)] != tk[P + j]) break;
    }
  }
  EXPECT_GT(rows_checked, 0) << "no golden logits for " << model;
}

class CudaFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << no_gpu_message();
  }
};

TEST_P(CudaFixture, Float16MatchesTransformers) { check_model(GetParam(), "float16", 5e-3); }
TEST_P(CudaFixture, Bfloat16MatchesTransformers) { check_model(GetParam(), "bfloat16", 2e-2); }

// Without --logits-out the greedy choice is made on the device: the same tokens as with host-side argmax.
TEST_P(CudaFixture, DeviceArgmaxGivesTheSameTokens) {
  auto engine = Engine::load(cuda_engine(GetParam(), "bfloat16"));
  SafetensorsFile golden(model_dir(GetParam()) + "/golden.safetensors");
  auto meta = read_json_file(model_dir(GetParam()) + "/golden.json");
  auto cases = meta.contains("cases") ? meta["cases"] : meta["samples"];
  const int64_t P = cases[0]["prompt_len"].get<int64_t>();
  const auto* tk = static_cast<const int32_t*>(golden.get("tokens_0").data);
  GreedyOptions g;
  g.max_new_tokens = 12;
  g.keep_logits = true;
  auto a = generate_greedy(*engine, std::vector<int32_t>(tk, tk + P), g);
  g.keep_logits = false;
  auto b = generate_greedy(*engine, std::vector<int32_t>(tk, tk + P), g);
  EXPECT_EQ(a.output_ids, b.output_ids);
}

INSTANTIATE_TEST_SUITE_P(Models, CudaFixture,
                         ::testing::Values("llama", "llama31", "qwen2", "qwen3", "mistral", "gpt2", "mixtral",
                                           "tiny-code"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace kiln::test
