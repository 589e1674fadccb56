// kiln convert of pre-quantized Hugging Face checkpoints (src/convert/hf_quant.h): AutoGPTQ with and without
// act-order and AutoAWQ GEMM, written by scripts/dev/write_prequant_checkpoints.py from each format's specification.
// Every linear layer of the kiln checkpoint, dequantized here ((q - zero) * scale), equals the weights the script
// started from, exactly; the checkpoint builds and runs; missing and mis-shaped scales are one error each.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "common/param_name.h"
#include "common/test_util.h"
#include "core/dtype.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace kiln::test {
namespace {

std::string prequant(const std::string& name) { return source_dir() + "/tests/data/prequant/" + name; }

// kiln module -> its HF parts (stacked along the output dimension).
const std::vector<std::pair<std::string, std::vector<std::string>>> kModules = {
    {"layers.0.attention.qkv", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}},
    {"layers.0.attention.dense", {"self_attn.o_proj"}},
    {"layers.0.mlp.gate_up", {"mlp.gate_proj", "mlp.up_proj"}},
    {"layers.0.mlp.down", {"mlp.down_proj"}},
};

class PrequantImport : public ::testing::TestWithParam<std::string> {};

TEST_P(PrequantImport, DequantizedWeightsAreTheWrittenOnes) {
  TempDir tmp;
  const std::string ck = tmp / "ck";
  auto r = run_kiln("convert --model " + prequant(GetParam()) + " --output " + ck);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto q = read_json_file(ck + "/config.json")["quantization"];
  EXPECT_EQ(q["quant_algo"], "W4A16_GPTQ");
  EXPECT_EQ(q["exclude_modules"], nlohmann::json::array({"lm_head"})) << "the float lm_head stays float";
  const int64_t G = q["group_size"].get<int64_t>();
  if (GetParam() != "gptq-actorder") EXPECT_EQ(G, 16) << "contiguous groups keep their size";
  SafetensorsFile k(ck + "/rank0.safetensors"), e(prequant(GetParam()) + "/expected.st");
  for (auto& [module, parts] : kModules) {
    SCOPED_TRACE(module);
    const TensorView& data = k.get(module + ".weight");
    const auto* d = static_cast<const uint8_t*>(data.data);
    const auto* s = static_cast<const float*>(k.get(module + ".weight_scale").data);
    const auto* z = static_cast<const int8_t*>(k.get(module + ".weight_zero").data);
    const int64_t K = data.shape[1] * 2;
    int64_t row = 0, mismatches = 0;
    for (auto& p : parts) {
      const TensorView& w = e.get("model.layers.0." + p + ".weight");  // [N, K] float32
      const auto* wf = static_cast<const float*>(w.data);
      for (int64_t n = 0; n < w.shape[0]; ++n, ++row)
        for (int64_t c = 0; c < K; ++c) {
          const uint8_t b = d[row * K / 2 + c / 2];
          const int qv = c % 2 == 0 ? int4x2_lo(b) : int4x2_hi(b);
          const int64_t g = row * (K / G) + c / G;
          mismatches += float(qv - z[g]) * s[g] != wf[n * K + c];
        }
    }
    EXPECT_EQ(row, data.shape[0]);
    EXPECT_EQ(mismatches, 0);
  }
  r = run_kiln("build --checkpoint " + ck + " --output " + (tmp / "e") + " --max-seq-len 32");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_kiln("run --engine " + (tmp / "e") + " --input-ids 3,7,9 --max-new-tokens 4");
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Formats, PrequantImport, ::testing::Values("gptq", "gptq-actorder", "awq"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST(PrequantImport, MissingOrMisShapedScalesAreRefused) {
  TempDir tmp;
  auto r = run_kiln("convert --model " + prequant("bad-missing") + " --output " + (tmp / "ck"));
  EXPECT_EQ(r.out, "error: " + prequant("bad-missing") +
                       ": missing tensor 'model.layers.0.self_attn.q_proj.scales' (GPTQ layer of [32, 32], group "
                       "size 16)\n");
  r = run_kiln("convert --model " + prequant("bad-shape") + " --output " + (tmp / "ck"));
  EXPECT_EQ(r.out, "error: " + prequant("bad-shape") +
                       ": tensor 'model.layers.0.self_attn.q_proj.scales' has shape [2, 40], expected [2, 32] (GPTQ "
                       "layer of [32, 32], group size 16)\n");
  r = run_kiln("convert --model " + prequant("bad-fp8-scale") + " --output " + (tmp / "ck"));
  EXPECT_EQ(r.out, "error: " + prequant("bad-fp8-scale") +
                       ": tensor 'model.layers.0.self_attn.q_proj.weight_scale' has shape [33, 1], expected [] or [1] "
                       "(per tensor) or [32, 1] (per channel) (compressed-tensors FP8)\n");
  EXPECT_FALSE(std::filesystem::exists(tmp / "ck"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(tmp.path()), {}), 0) << "nothing half-written";
}

struct Fp8Case {
  std::string name, algo;
  bool kv;
};

class PrequantFp8 : public ::testing::TestWithParam<Fp8Case> {};

// FP8 layers: f8(code) * scale equals the written weight exactly, except a part requantized to its fused layer's
// larger per-tensor scale (up_proj in fp8-ct-tensor), which stays within half an fp8 step.
TEST_P(PrequantFp8, DequantizedWeightsAreTheWrittenOnes) {
  const Fp8Case& c = GetParam();
  TempDir tmp;
  const std::string ck = tmp / "ck";
  auto r = run_kiln("convert --model " + prequant(c.name) + " --output " + ck);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto q = read_json_file(ck + "/config.json")["quantization"];
  EXPECT_EQ(q["quant_algo"], c.algo);
  EXPECT_EQ(q["kv_cache_quant_algo"], c.kv ? nlohmann::json("FP8") : nlohmann::json(nullptr));
  SafetensorsFile k(ck + "/rank0.safetensors"), e(prequant(c.name) + "/expected.st"),
      hf(prequant(c.name) + "/model.safetensors");
  const bool per_channel = c.algo == "FP8_PER_CHANNEL_PER_TOKEN";
  for (auto& [module, parts] : kModules) {
    SCOPED_TRACE(module);
    const TensorView& data = k.get(module + ".weight");
    const auto* d = static_cast<const uint8_t*>(data.data);
    const auto* s = static_cast<const float*>(k.get(module + ".weight_scale").data);
    const int64_t K = data.shape[1];
    int64_t row = 0, inexact = 0, worse = 0;
    float in_max = 0;
    for (auto& p : parts) {
      const TensorView& w = e.get("model.layers.0." + p + ".weight");
      const auto* wf = static_cast<const float*>(w.data);
      if (!per_channel) {
        const auto* is = static_cast<const float*>(hf.get("model.layers.0." + p + ".input_scale").data);
        in_max = std::max(in_max, *is);
      }
      for (int64_t n = 0; n < w.shape[0]; ++n, ++row)
        for (int64_t x = 0; x < K; ++x) {
          const float got = f8e4m3_to_f32(d[row * K + x]) * s[per_channel ? row : 0], want = wf[n * K + x];
          inexact += got != want;
          worse += std::fabs(got - want) > std::fabs(want) / 16 + std::ldexp(s[0], -10);
        }
    }
    EXPECT_EQ(worse, 0);
    if (c.name != "fp8-ct-tensor" || module != "layers.0.mlp.gate_up") EXPECT_EQ(inexact, 0);
    if (!per_channel) EXPECT_EQ(*static_cast<const float*>(k.get(module + ".input_scale").data), in_max);
  }
  if (c.kv) {
    const auto* kv = static_cast<const float*>(k.get("layers.0.attention.kv_cache_scale").data);
    EXPECT_EQ(kv[0], 0.03f);
    EXPECT_EQ(kv[1], 0.07f);
  }
  r = run_kiln("build --checkpoint " + ck + " --output " + (tmp / "e") + " --max-seq-len 32");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_kiln("run --engine " + (tmp / "e") + " --input-ids 3,7,9 --max-new-tokens 4");
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Formats, PrequantFp8,
                         ::testing::Values(Fp8Case{"fp8-ct-tensor", "FP8", true},
                                           Fp8Case{"fp8-ct-channel", "FP8_PER_CHANNEL_PER_TOKEN", false},
                                           Fp8Case{"fp8-modelopt", "FP8", true}),
                         DashToUnderscore());

}  // namespace
}  // namespace kiln::test
