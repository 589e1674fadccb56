// Every fixture model through the CLI: convert -> build -> run, against transformers' logits and tokens.
#include <gtest/gtest.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace kiln::test {
namespace {

struct Engine {
  TempDir dir;
  std::string engine;
};

// Converts and builds `model` once per (model, dtype) for the whole test binary.
const std::string& engine_for(const std::string& model, const std::string& dtype = "") {
  static std::map<std::string, std::unique_ptr<Engine>> cache;
  auto& e = cache[model + "/" + dtype];
  if (!e) {
    e = std::make_unique<Engine>();
    std::string ck = e->dir / "ckpt";
    e->engine = e->dir / "engine";
    auto c = run_kiln("convert --model " + model_dir(model) + " --output " + ck +
                      (dtype.empty() ? "" : " --dtype " + dtype));
    EXPECT_EQ(c.exit_code, 0) << c.out;
    auto b = run_kiln("build --checkpoint " + ck + " --output " + e->engine + " --target cpu");
    EXPECT_EQ(b.exit_code, 0) << b.out;
  }
  return e->engine;
}

struct CaseResult {
  std::vector<int32_t> ids;
  std::unique_ptr<SafetensorsFile> logits;
};

CaseResult run_case(const std::string& engine, const int32_t* prompt, size_t P, int new_tokens, const TempDir& tmp,
                    bool logits) {
  std::string out = tmp / "out.json", lo = tmp / "logits.safetensors";
  auto r = run_kiln("run --engine " + engine + " --input-ids " + join_ids(prompt, P) + " --max-new-tokens " +
                    std::to_string(new_tokens) + " --output-file " + out + (logits ? " --logits-out " + lo : ""));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  CaseResult c;
  c.ids = read_json_file(out)["output_ids"].get<std::vector<int32_t>>();
  if (logits) c.logits = std::make_unique<SafetensorsFile>(lo);
  return c;
}

// Checks tokens and per-row logits of every golden case of `model` against an engine.
void check_model(const std::string& model, const std::string& dtype, double tol, bool exact_tokens) {
  const std::string& engine = engine_for(model, dtype);
  auto meta = read_json_file(model_dir(model) + "/golden.json");
  SafetensorsFile golden(model_dir(model) + "/golden.safetensors");
  auto cases = meta.contains("cases") ? meta["cases"] : meta["samples"];
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(model + " case " + std::to_string(i));
    const int64_t P = cases[i]["prompt_len"].get<int64_t>();
    const TensorView& toks = golden.get("tokens_" + std::to_string(i));
    const int N = int(toks.numel() - P);
    const auto* tk = static_cast<const int32_t*>(toks.data);
    const bool has_logits = golden.has("logits_" + std::to_string(i));
    TempDir tmp;
    auto res = run_case(engine, tk, size_t(P), N, tmp, has_logits);
    ASSERT_EQ(int(res.ids.size()), N);
    int mismatched = 0;
    for (int j = 0; j < N; ++j) mismatched += res.ids[j] != tk[P + j];
    if (exact_tokens) EXPECT_EQ(mismatched, 0) << "generated tokens differ from transformers'";
    if (!has_logits) continue;
    const TensorView& ref = golden.get("logits_" + std::to_string(i));
    const int64_t V = ref.shape[1];
    const auto* rl = static_cast<const float*>(ref.data);
    const TensorView& ctx = res.logits->get("context_logits");
    const TensorView& gen = res.logits->get("generation_logits");
    ASSERT_EQ(ctx.shape, (std::vector<int64_t>{P, V}));
    ASSERT_EQ(gen.shape, (std::vector<int64_t>{N, V}));
    double worst = 0;
    for (int64_t p = 0; p < P; ++p)
      worst = std::max(worst, rel_err(static_cast<const float*>(ctx.data) + p * V, rl + p * V, size_t(V)));
    // Generation row j is compared with the reference at position P-1+j only while the sequences agree.
    for (int j = 0; j < N; ++j) {
      worst = std::max(worst, rel_err(static_cast<const float*>(gen.data) + j * V, rl + (P - 1 + j) * V, size_t(V)));
      if (res.ids[j] != tk[P + j]) break;
    }
    EXPECT_LE(worst, tol) << "worst per-row relative logit error";
  }
}

class Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(Fixture, Float32MatchesTransformers) { check_model(GetParam(), "float32", 1e-4, true); }
TEST_P(Fixture, CheckpointDtypeMatchesTransformers) { check_model(GetParam(), "", 1e-4, true); }
TEST_P(Fixture, Float16WithinTolerance) { check_model(GetParam(), "float16", 1e-2, false); }
TEST_P(Fixture, Bfloat16WithinTolerance) { check_model(GetParam(), "bfloat16", 4e-2, false); }

auto param_name = [](const auto& info) {
  std::string n = info.param;
  for (auto& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
};

INSTANTIATE_TEST_SUITE_P(Models, Fixture,
                         ::testing::Values("llama", "llama31", "qwen2", "qwen3", "mistral", "gpt2", "mixtral",
                                           "tiny-code"),
                         param_name);

// Other shapes than the shared fixtures (GQA ratios, head_dim overrides, RoPE variants and factors, biases,
// windows, expert counts, 150-token prompts with 40 new tokens), against transformers' outputs.
INSTANTIATE_TEST_SUITE_P(OtherShapes, Fixture,
                         ::testing::Values("extra/llama-gqa-linear", "extra/llama3-mqa", "extra/mistral-window",
                                           "extra/qwen2-mha", "extra/qwen3-wide-head", "extra/gpt2-inner",
                                           "extra/mixtral-top1", "extra/mixtral-5x3"),
                         param_name);

}  // namespace
}  // namespace kiln::test
