// kiln build's refusals (one error naming the missing kernel, or the unsupported mapping; nothing written) and the
// engine layout of quantized tensors (copied as they are, never widened).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include "build/engine_builder.h"
#include "build/target_kernels.h"
#include "common/quant_checkpoint.h"
#include "common/test_util.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace kiln::test {
namespace {

// Nothing of the output, staged or final, is left in `parent`.
std::string leftovers(const std::string& parent) {
  std::string s;
  for (auto& e : fs::directory_iterator(parent))
    if (e.path().filename() != "ck") s += e.path().filename().string() + " ";
  return s;
}

struct Refusal {
  std::string name;
  std::string kind;
  QuantConfig q;
  std::string fields;   // what the error says the checkpoint has
  std::string kernels;  // "no ... kernel" as the error names it
};

std::vector<Refusal> refusals() {
  using K = KvCacheQuantAlgo;
  return {
      {"fp8_per_tensor", "llama", quant(QuantAlgo::FP8), "quant_algo FP8", "no FP8 GEMM kernel"},
      {"fp8_rowwise", "llama", quant(QuantAlgo::FP8_PER_CHANNEL_PER_TOKEN), "quant_algo FP8_PER_CHANNEL_PER_TOKEN",
       "no FP8 per-channel/per-token GEMM kernel"},
      {"int8_smoothquant", "llama", quant(QuantAlgo::W8A8_SQ_PER_CHANNEL_PER_TOKEN),
       "quant_algo W8A8_SQ_PER_CHANNEL_PER_TOKEN", "no int8 SmoothQuant (W8A8) GEMM kernel"},
      {"int8_weight_only", "gpt2", quant(QuantAlgo::W8A16), "quant_algo W8A16",
       "no int8 weight-only (W8A16) GEMM kernel"},
      {"int4_weight_only_per_group", "llama", quant(QuantAlgo::W4A16, 4), "quant_algo W4A16",
       "no int4 weight-only (W4A16) GEMM kernel"},
      {"int4_awq", "mixtral", quant(QuantAlgo::W4A16_AWQ, 4), "quant_algo W4A16_AWQ",
       "no int4 AWQ (W4A16_AWQ) GEMM kernel"},
      {"int4_gptq", "llama", quant(QuantAlgo::W4A16_GPTQ, 8), "quant_algo W4A16_GPTQ",
       "no int4 GPTQ (W4A16_GPTQ) GEMM kernel"},
      {"fp8_kv_cache", "llama", quant(QuantAlgo::None, 0, K::FP8), "kv_cache_quant_algo FP8",
       "no FP8 KV-cache attention kernel"},
      {"int8_kv_cache", "gpt2", quant(QuantAlgo::None, 0, K::INT8), "kv_cache_quant_algo INT8",
       "no INT8 KV-cache attention kernel"},
      {"fp8_weights_and_kv_cache", "llama", quant(QuantAlgo::FP8, 0, K::FP8),
       "quant_algo FP8 and kv_cache_quant_algo FP8", "no FP8 GEMM kernel and no FP8 KV-cache attention kernel"},
  };
}

class BuildRefusal : public ::testing::TestWithParam<Refusal> {};

TEST_P(BuildRefusal, NamesTheMissingKernelAndWritesNothing) {
  const Refusal& r = GetParam();
  TempDir tmp;
  ModelConfig c = tiny_config(r.kind);
  c.quant = r.q;
  write_checkpoint(tmp / "ck", c);
  for (const std::string target : {"cuda"}) {
    BuildOptions o;
    o.checkpoint_dir = tmp / "ck";
    o.output_dir = tmp / "engine";
    o.target = target;
    bool planned = false;
    o.plan = [&](const EngineInfo&, std::optional<DType>) {  // must not be reached: the refusal comes first
      planned = true;
      return TargetPlan{};
    };
    EXPECT_EQ(error_of([&] { build_engine(o); }),
              "checkpoint " + o.checkpoint_dir + " has " + r.fields + ": the " + target + " target has " + r.kernels +
                  " yet");
    EXPECT_FALSE(planned) << target;
    EXPECT_EQ(leftovers(tmp.path()), "") << target;
  }
  // The cpu target has every quantized kernel (its reference ones): it builds the checkpoint.
  BuildOptions o;
  o.checkpoint_dir = tmp / "ck";
  o.output_dir = tmp / "engine";
  EXPECT_EQ(error_of([&] { build_engine(o); }), "");
  EXPECT_TRUE(fs::exists(tmp / "engine/engine.json"));
}

INSTANTIATE_TEST_SUITE_P(Types, BuildRefusal, ::testing::ValuesIn(refusals()),
                         [](const auto& info) { return info.param.name; });

TEST(BuildRefusal, SyntheticQuantizedConfig) {
  TempDir tmp;
  ModelConfig c = tiny_config("llama");
  c.quant = quant(QuantAlgo::W8A16);
  write_checkpoint_config(tmp / "config.json", c);
  BuildOptions o;
  o.synthetic_config = tmp / "config.json";
  o.output_dir = tmp / "engine";
  EXPECT_EQ(error_of([&] { build_engine(o); }),
            "--synthetic " + o.synthetic_config + " has a quantization: synthetic engines have random float weights "
                                                  "(quantize a checkpoint with kiln quantize instead)");
  EXPECT_FALSE(fs::exists(o.output_dir));
}

TEST(BuildRanks, MoreThanOneRankIsRefusedNotBuiltFromRankZero) {
  TempDir tmp;
  ModelConfig c = tiny_config("llama");
  c.mapping.tp_size = 2;
  write_checkpoint(tmp / "ck", c, {0});
  BuildOptions o;
  o.checkpoint_dir = tmp / "ck";
  o.output_dir = tmp / "engine";
  EXPECT_EQ(error_of([&] { build_engine(o); }),
            tmp / "ck/rank1.safetensors" + ": missing (the mapping has 2 ranks: tp_size 2 x pp_size 1)");
  fs::copy_file(tmp / "ck/rank0.safetensors", tmp / "ck/rank1.safetensors");
  EXPECT_EQ(
      error_of([&] { build_engine(o); }),
      "checkpoint " + o.checkpoint_dir + " has tp_size 2: tensor parallelism is not supported yet (one rank only)");
  EXPECT_EQ(leftovers(tmp.path()), "");

  TempDir tmp2;
  c.mapping = Mapping{.pp_size = 2};
  write_checkpoint(tmp2 / "ck", c, {0, 1});
  o.checkpoint_dir = tmp2 / "ck";
  o.output_dir = tmp2 / "engine";
  EXPECT_EQ(error_of([&] { build_engine(o); }), "checkpoint " + o.checkpoint_dir +
                                                     " has pp_size 2: pipeline parallelism is not supported yet (one "
                                                     "rank only)");
  EXPECT_EQ(leftovers(tmp2.path()), "");
}

TEST(BuildRanks, OneRankBuildsItsRankFile) {
  TempDir tmp;
  ModelConfig c = tiny_config("gpt2");
  auto written = write_checkpoint(tmp / "ck", c);
  fs::remove(tmp / "ck/rank0.safetensors");
  BuildOptions o;
  o.checkpoint_dir = tmp / "ck";
  o.output_dir = tmp / "engine";
  EXPECT_EQ(error_of([&] { build_engine(o); }),
            tmp / "ck/rank0.safetensors" + ": missing (the mapping has 1 rank: tp_size 1 x pp_size 1)");
  write_checkpoint(tmp / "ck", c);
  build_engine(o);
  const WeightFile e(tmp / "engine/rank0.safetensors", c);
  const TensorView& t = e.get("layers.1.mlp.fc.weight");
  EXPECT_EQ(t.dtype, DType::F32) << "the cpu target's float weights";
  const auto& w = written.at("layers.1.mlp.fc.weight");
  for (int64_t i = 0; i < t.numel(); ++i) {
    uint16_t h;
    std::memcpy(&h, w.bytes.data() + 2 * i, 2);
    ASSERT_EQ(static_cast<const float*>(t.data)[i], f16_to_f32(h)) << i;
  }
  EXPECT_EQ(e.metadata().at("format"), "kiln-engine");
}

TEST(EngineTensor, QuantizedDataIsCopiedNeverWidened) {
  const std::vector<uint8_t> fp8 = {0x38, 0x7e, 0x80, 0x01, 0xfe, 0x08};  // [2, 3] e4m3 codes
  TensorView v;
  v.name = "w";
  v.dtype = DType::F8_E4M3;
  v.shape = {2, 3};
  v.data = fp8.data();
  v.nbytes = fp8.size();
  const WeightSpec spec{"w", {2, 3}, true, DType::F8_E4M3};
  for (DType target : {DType::F32, DType::BF16, DType::F16}) {
    const EngineTensor e = engine_tensor(v, spec, target);
    EXPECT_EQ(e.dtype, DType::F8_E4M3);
    EXPECT_EQ(e.bytes, fp8);
  }
  const std::vector<uint8_t> int4 = {0xf1, 0x78};  // [1, 2] bytes: int4 [1, 4] = 1, -1, -8, 7
  v.dtype = DType::I4X2;
  v.shape = {1, 2};
  v.data = int4.data();
  v.nbytes = int4.size();
  const EngineTensor e4 = engine_tensor(v, WeightSpec{"w", {1, 2}, true, DType::I4X2}, DType::F32);
  EXPECT_EQ(e4.dtype, DType::I4X2);
  EXPECT_EQ(e4.bytes, int4);
  EXPECT_NE(error_of([&] { engine_tensor(v, WeightSpec{"w", {1, 2}, true, DType::I8}, DType::F32); })
                .find("int4x2 data where the quantization stores int8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { engine_tensor(v, WeightSpec{"w", {1, 2}}, DType::F32); }).find("float weights only"),
            std::string::npos)
      << "a float spec never converts integer data";

  const std::vector<uint16_t> half = {0x3c00, 0xc000};  // [2] fp16: 1, -2
  v.dtype = DType::F16;
  v.shape = {2};
  v.data = half.data();
  v.nbytes = 4;
  const EngineTensor f = engine_tensor(v, WeightSpec{"b", {2}}, DType::F32);
  ASSERT_EQ(f.dtype, DType::F32);
  ASSERT_EQ(f.bytes.size(), 8u);
  float out[2];
  std::memcpy(out, f.bytes.data(), 8);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  const EngineTensor same = engine_tensor(v, WeightSpec{"b", {2}}, DType::F16);
  EXPECT_EQ(std::memcmp(same.bytes.data(), half.data(), 4), 0);
}

TEST(TargetKernels, CpuHasEveryQuantizedKernelCudaNoneYet) {
  EXPECT_EQ(missing_quant_kernels("cpu", QuantConfig{}), "");
  EXPECT_EQ(missing_quant_kernels("cpu", quant(QuantAlgo::W4A16_GPTQ, 8, KvCacheQuantAlgo::INT8)), "");
  EXPECT_EQ(missing_quant_kernels("cuda", QuantConfig{}), "");
  EXPECT_EQ(missing_quant_kernels("cuda", quant(QuantAlgo::FP8)), "the cuda target has no FP8 GEMM kernel yet");
  EXPECT_EQ(error_of([] { require_quant_kernels("cuda", quant(QuantAlgo::FP8), "checkpoint ck"); }),
            "checkpoint ck has quant_algo FP8: the cuda target has no FP8 GEMM kernel yet");
}

}  // namespace
}  // namespace kiln::test
