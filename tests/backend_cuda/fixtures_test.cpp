// Every model of tests/data/models and tests/data/extra through convert -> build --target cuda -> greedy generation
// (the code paths of `kiln convert`, `kiln build` and `kiln run`, in process), in float16 and bfloat16, against
// transformers' float32 goldens. Decode steps run through CUDA graphs (the runner records them).
//
// The tolerance is transformers' own: scripts/dev/dtype_error.py runs transformers in each dtype on a GPU over the
// same golden sequences and writes, beside the goldens (dtype_error.json), its worst per-row relative error against
// its own float32 output, with the metric used here (rel_err, tests/common/test_util.h). kiln passes at
// tol = max(1.5 x that error, 5e-3 for float16 / 2e-2 for bfloat16). A missing dtype_error.json is a failure.
//
// Logits (generate_greedy with keep_logits, as `kiln run --logits-out`): every context row, and generation row j
// while kiln's tokens agree with the golden ones (row P-1+j of the reference), within tol.
// Tokens (the device-side greedy choice, as `kiln run` without --logits-out): where the reference row's top-1/top-2
// gap g exceeds sqrt(2) x tol x ||reference row||, kiln's token must be the golden one. The bound follows from the
// tolerance: a row within it has ||d|| <= tol x ||ref|| for its error d, and another token c overtakes the top one
// a only if d_c - d_a >= g, while |d_c - d_a| <= sqrt(2) ||d||. So where the gap is clear, a differing token means
// the row broke the tolerance or the device chose other than the logits say. Tokens are compared up to the first
// difference (later rows would have other contexts than the golden ones).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "backend_cuda/cuda_test_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "runtime/generate.h"

namespace kiln::test {
namespace {

// Every folder of tests/data/models and tests/data/extra with goldens, as model_dir() names them.
std::vector<std::string> all_fixture_models() {
  std::vector<std::string> out;
  for (const char* group : {"models", "extra"}) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(source_dir() + "/tests/data/" + group, ec))
      if (std::filesystem::exists(e.path() / "golden.safetensors")) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    for (auto& n : names) out.push_back(std::string(group) == "extra" ? "extra/" + n : n);
  }
  return out;
}

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

double norm_of(const float* x, int64_t V) {
  double s = 0;
  for (int64_t v = 0; v < V; ++v) s += double(x[v]) * double(x[v]);
  return std::sqrt(s);
}

// kiln's tolerance for `model` in `dtype`, from transformers' own error in dtype_error.json; fails (not skips) when
// the file or the entry is missing.
bool tolerance_of(const std::string& model, const std::string& dtype, double* tol, double* hf_error) {
  const std::string path = model_dir(model) + "/dtype_error.json";
  if (!std::filesystem::exists(path)) {
    ADD_FAILURE() << path << " is missing: run scripts/dev/dtype_error.py on a machine with a GPU, torch and "
                  << "transformers (it measures transformers' own " << dtype << " error on the golden sequences, "
                  << "this test's tolerance) and commit the file";
    return false;
  }
  auto j = read_json_file(path);
  if (!j.contains(dtype) || !j[dtype].is_number()) {
    ADD_FAILURE() << path << " has no number for \"" << dtype << "\": run scripts/dev/dtype_error.py again";
    return false;
  }
  *hf_error = j[dtype].get<double>();
  *tol = std::max(1.5 * *hf_error, dtype == "float16" ? 5e-3 : 2e-2);
  return true;
}

struct GoldenCase {
  int64_t index = 0, P = 0;
  int N = 0;
  const int32_t* tokens = nullptr;  // [P + N]
  const float* logits = nullptr;    // [P + N, V]
};

// The golden cases that have reference logits (the ones transformers' dtype error was measured on).
std::vector<GoldenCase> cases_with_logits(const std::string& model, SafetensorsFile& golden) {
  auto meta = read_json_file(model_dir(model) + "/golden.json");
  auto cases = meta.contains("cases") ? meta["cases"] : meta["samples"];
  std::vector<GoldenCase> out;
  for (size_t i = 0; i < cases.size(); ++i) {
    if (!golden.has("logits_" + std::to_string(i))) continue;
    GoldenCase c;
    c.index = int64_t(i);
    c.P = cases[i]["prompt_len"].get<int64_t>();
    const TensorView& toks = golden.get("tokens_" + std::to_string(i));
    c.N = int(toks.numel() - c.P);
    c.tokens = static_cast<const int32_t*>(toks.data);
    c.logits = static_cast<const float*>(golden.get("logits_" + std::to_string(i)).data);
    out.push_back(c);
  }
  return out;
}

void check_model(const std::string& model, const std::string& dtype) {
  double tol = 0, hf_error = 0;
  if (!tolerance_of(model, dtype, &tol, &hf_error)) return;
  auto engine = Engine::load(cuda_engine(model, dtype));
  SafetensorsFile golden(model_dir(model) + "/golden.safetensors");
  const int64_t V = engine->model().vocab_size;
  const auto cases = cases_with_logits(model, golden);
  ASSERT_FALSE(cases.empty()) << "no golden logits for " << model;
  double worst = 0;
  int rows_checked = 0, tokens_checked = 0;
  for (const GoldenCase& c : cases) {
    SCOPED_TRACE(model + " " + dtype + " case " + std::to_string(c.index) + ", tolerance " + std::to_string(tol) +
                 " (transformers' own " + dtype + " error " + std::to_string(hf_error) + ")");
    const std::vector<int32_t> prompt(c.tokens, c.tokens + c.P);
    GreedyOptions g;
    g.max_new_tokens = c.N;
    g.keep_logits = true;
    auto r = generate_greedy(*engine, prompt, g);
    ASSERT_EQ(int(r.output_ids.size()), c.N);
    auto check_row = [&](const float* got, int64_t ref_row, const std::string& where) {
      const double e = rel_err(got, c.logits + ref_row * V, size_t(V));
      EXPECT_LE(e, tol) << where;
      worst = std::max(worst, std::isnan(e) ? INFINITY : e);
      ++rows_checked;
    };
    for (int64_t p = 0; p < c.P; ++p) check_row(r.context_logits.data() + p * V, p, "context row " + std::to_string(p));
    for (int j = 0; j < c.N; ++j) {
      check_row(r.generation_logits.data() + int64_t(j) * V, c.P - 1 + j, "generation row " + std::to_string(j));
      if (r.output_ids[size_t(j)] != c.tokens[c.P + j]) break;
    }

    // The device-side greedy choice (no logits come back), where the reference's gap is clear.
    g.keep_logits = false;
    auto d = generate_greedy(*engine, prompt, g);
    ASSERT_EQ(int(d.output_ids.size()), c.N);
    for (int j = 0; j < c.N; ++j) {
      const float* ref = c.logits + (c.P - 1 + j) * V;
      const double gap = top_gap(ref, V), bound = std::sqrt(2.0) * tol * norm_of(ref, V);
      if (gap > bound) {
        EXPECT_EQ(d.output_ids[size_t(j)], c.tokens[c.P + j])
            << "generated token " << j << ": the reference's top-2 gap " << gap << " exceeds the bound " << bound;
        ++tokens_checked;
      }
      if (d.output_ids[size_t(j)] != c.tokens[c.P + j]) break;
    }
  }
  EXPECT_GT(rows_checked, 0);
  std::printf("[ fidelity ] %s %s: kiln's worst row %.3g, tolerance %.3g (transformers' own error %.3g), %d tokens "
              "with a clear gap checked\n", model.c_str(), dtype.c_str(), worst, tol, hf_error, tokens_checked);
  // In the gtest report: kiln's worst row beside the tolerance and transformers' own error.
  ::testing::Test::RecordProperty("kiln_worst_row_error", std::to_string(worst));
  ::testing::Test::RecordProperty("tolerance", std::to_string(tol));
  ::testing::Test::RecordProperty("transformers_error", std::to_string(hf_error));
  ::testing::Test::RecordProperty("clear_gap_tokens_checked", tokens_checked);
}

class CudaFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << no_gpu_message();
  }
};

TEST_P(CudaFixture, Float16MatchesTransformers) { check_model(GetParam(), "float16"); }
TEST_P(CudaFixture, Bfloat16MatchesTransformers) { check_model(GetParam(), "bfloat16"); }

// Without keep_logits the greedy choice is made on the device: the same tokens as the host's argmax of the logits.
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

// The suite's parameters are found in the source tree at start-up: a wrong path would leave the suite empty.
TEST(CudaFixtureList, CoversTheModelsAndExtraShapes) {
  const auto m = all_fixture_models();
  EXPECT_GE(m.size(), 16u);
  for (const char* name : {"llama", "tiny-code", "extra/mixtral-5x3", "extra/gpt2-inner"})
    EXPECT_NE(std::find(m.begin(), m.end(), name), m.end()) << name;
}

INSTANTIATE_TEST_SUITE_P(Models, CudaFixture, ::testing::ValuesIn(all_fixture_models()), [](const auto& info) {
  std::string n = info.param;
  for (auto& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

}  // namespace
}  // namespace kiln::test
