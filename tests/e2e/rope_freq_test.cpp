// kiln convert --rope-freq-dtype: float32 RoPE frequencies by default (as transformers' from_pretrained computes
// them, and as every reference in tests/data was made), or rounded to the HF checkpoint's dtype with `checkpoint`.
// The choice is recorded in the checkpoint's config and reaches the engine: on llama's 33-token golden prompt the
// default matches transformers within the fixtures' 1e-4, the rounded frequencies do not.
#include <gtest/gtest.h>

#include "common/test_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace kiln::test {
namespace {

std::string freq_dtype_of(const std::string& ckpt) {
  return read_json_file(ckpt + "/config.json")["rope"]["freq_dtype"].get<std::string>();
}

// Worst per-row relative error of the context logits of golden case `i` of llama, from an engine converted with
// `convert_flags` (float32 weights, so only the frequencies differ between engines).
double worst_context_error(const std::string& convert_flags, const TempDir& tmp, const std::string& tag, int i) {
  const std::string ck = tmp / (tag + "-ck"), eng = tmp / (tag + "-eng"), lo = tmp / (tag + ".safetensors");
  auto c = run_kiln("convert --model " + model_dir("llama") + " --output " + ck + " --dtype float32" + convert_flags);
  EXPECT_EQ(c.exit_code, 0) << c.out;
  auto b = run_kiln("build --checkpoint " + ck + " --output " + eng + " --target cpu");
  EXPECT_EQ(b.exit_code, 0) << b.out;
  auto meta = read_json_file(model_dir("llama") + "/golden.json");
  SafetensorsFile golden(model_dir("llama") + "/golden.safetensors");
  const int64_t P = meta["cases"][i]["prompt_len"].get<int64_t>();
  const auto* tk = static_cast<const int32_t*>(golden.get("tokens_" + std::to_string(i)).data);
  auto r = run_kiln("run --engine " + eng + " --input-ids " + join_ids(tk, size_t(P)) +
                    " --max-new-tokens 1 --logits-out " + lo + " --output-file " + (tmp / (tag + ".json")));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  if (r.exit_code != 0) return 1e9;
  SafetensorsFile got(lo);
  const TensorView& ref = golden.get("logits_" + std::to_string(i));
  const TensorView& ctx = got.get("context_logits");
  const int64_t V = ref.shape[1];
  EXPECT_EQ(ctx.shape, (std::vector<int64_t>{P, V}));
  double worst = 0;
  for (int64_t p = 0; p < P; ++p)
    worst = std::max(worst, rel_err(static_cast<const float*>(ctx.data) + p * V,
                                    static_cast<const float*>(ref.data) + p * V, size_t(V)));
  return worst;
}

TEST(RopeFreqDtype, Float32ByDefaultCheckpointDtypeOnRequest) {
  TempDir tmp;
  const std::string hf = model_dir("llama");
  ASSERT_EQ(read_json_file(hf + "/config.json")["dtype"], "bfloat16");
  auto convert = [&](const std::string& out, const std::string& flags) {
    auto r = run_kiln("convert --model " + hf + " --output " + (tmp / out) + flags);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return freq_dtype_of(tmp / out);
  };
  EXPECT_EQ(convert("default", ""), "float32");
  EXPECT_EQ(convert("f32", " --rope-freq-dtype float32"), "float32");
  EXPECT_EQ(convert("ckpt", " --rope-freq-dtype checkpoint"), "bfloat16");
  // The HF checkpoint's dtype, not the dtype the weights are converted to.
  EXPECT_EQ(convert("ckpt-f16", " --rope-freq-dtype checkpoint --dtype float16"), "bfloat16");
  auto bad = run_kiln("convert --model " + hf + " --output " + (tmp / "bad") + " --rope-freq-dtype float16");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("--rope-freq-dtype"), std::string::npos) << bad.out;
}

TEST(RopeFreqDtype, TheChoiceReachesTheEngine) {
  TempDir tmp;
  EXPECT_LE(worst_context_error("", tmp, "default", 2), 1e-4);
  EXPECT_GT(worst_context_error(" --rope-freq-dtype checkpoint", tmp, "rounded", 2), 1e-4)
      << "bf16-rounded frequencies should move the logits of a 33-token prompt away from transformers'";
}

}  // namespace
}  // namespace kiln::test
