// The CLI on checkpoints with a mapping or a quantization: convert records both, and refuses more than one rank by
// flag; build and run refuse a tp_size 2 or quantized checkpoint or engine (before: silently built from rank 0 and as
// floats) with one error line naming what is missing, a non-zero exit and no output.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/quant_checkpoint.h"
#include "common/test_util.h"
#include "io/json_file.h"

namespace fs = std::filesystem;

namespace kiln::test {
namespace {

// Exactly one line, "error: " + what, a non-zero exit, and nothing but `keep` in `parent`.
void expect_refusal(const CmdResult& r, const std::string& what, const std::string& parent,
                    const std::vector<std::string>& keep) {
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "error: " + what + "\n");
  for (auto& e : fs::directory_iterator(parent)) {
    const std::string n = e.path().filename().string();
    EXPECT_NE(std::find(keep.begin(), keep.end(), n), keep.end()) << "left behind: " << n;
  }
}

// A converted fixture checkpoint with config.json edited.
std::string converted(const TempDir& tmp, const std::function<void(nlohmann::json&)>& edit) {
  const std::string ck = tmp / "ck";
  auto r = run_kiln("convert --model " + model_dir("llama") + " --output " + ck);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  auto j = read_json_file(ck + "/config.json");
  edit(j);
  write_json_file(ck + "/config.json", j);
  return ck;
}

TEST(QuantRankCli, ConvertRecordsTheMappingAndQuantization) {
  TempDir tmp;
  auto r = run_kiln("convert --model " + model_dir("llama") + " --output " + (tmp / "ck") + " --tp-size 1 --pp-size 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = read_json_file(tmp / "ck/config.json");
  EXPECT_EQ(j["mapping"], nlohmann::json::parse(R"({"tp_size": 1, "pp_size": 1, "world_size": 1})"));
  EXPECT_EQ(j["quantization"],
            nlohmann::json::parse(
                R"({"quant_algo": null, "kv_cache_quant_algo": null, "group_size": null, "exclude_modules": []})"));
  EXPECT_TRUE(fs::exists(tmp / "ck/rank0.safetensors"));
}

TEST(QuantRankCli, ConvertRefusesMoreThanOneRank) {
  TempDir tmp;
  const std::string args = "convert --model " + model_dir("llama") + " --output " + (tmp / "ck");
  expect_refusal(run_kiln(args + " --tp-size 2"),
                 "--tp-size 2: tensor parallelism is not supported yet (one rank only)", tmp.path(), {});
  expect_refusal(run_kiln(args + " --pp-size 4"),
                 "--pp-size 4: pipeline parallelism is not supported yet (one rank only)", tmp.path(), {});
  expect_refusal(run_kiln(args + " --tp-size 0"), "--tp-size 0: must be at least 1", tmp.path(), {});
}

TEST(QuantRankCli, ConvertRefusesAQuantizedHuggingFaceCheckpoint) {
  TempDir tmp;
  const std::string hf = tmp / "hf";
  fs::copy(model_dir("llama"), hf, fs::copy_options::recursive);
  for (auto& e : fs::recursive_directory_iterator(hf))
    fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  auto j = read_json_file(hf + "/config.json");
  j["quantization_config"] = {{"quant_method", "fp8"}, {"activation_scheme", "static"}};
  write_json_file(hf + "/config.json", j);
  expect_refusal(run_kiln("convert --model " + hf + " --output " + (tmp / "ck")),
                 hf + "/config.json: quantization_config.quant_method 'fp8': kiln imports gptq, awq (GEMM), "
                      "compressed-tensors (FP8) and modelopt (FP8) checkpoints",
                 tmp.path(), {"hf"});
}

TEST(QuantRankCli, BuildRefusesTpSize2) {
  TempDir tmp;
  const std::string ck = converted(tmp, [](auto& j) { j["mapping"] = {{"tp_size", 2}, {"pp_size", 1}}; });
  const std::string build = "build --checkpoint " + ck + " --output " + (tmp / "engine");
  expect_refusal(run_kiln(build), ck + "/rank1.safetensors: missing (the mapping has 2 ranks: tp_size 2 x pp_size 1)",
                 tmp.path(), {"ck"});
  fs::copy_file(ck + "/rank0.safetensors", ck + "/rank1.safetensors");
  expect_refusal(run_kiln(build), "checkpoint " + ck + " has tp_size 2: tensor parallelism is not supported yet (one "
                                                       "rank only)",
                 tmp.path(), {"ck"});
}

TEST(QuantRankCli, BuildRefusesAQuantAlgo) {
  TempDir tmp;
  // A float checkpoint whose config.json says FP8 (before: built as if it were float).
  const std::string ck = converted(tmp, [](auto& j) { j["quantization"]["quant_algo"] = "FP8"; });
  const std::string build = "build --checkpoint " + ck + " --output " + (tmp / "engine");
  expect_refusal(run_kiln(build), ck + "/rank0.safetensors: tensor 'layers.0.attention.qkv.weight' has dtype BF16, expected "
                                       "F8_E4M3 (quant_algo FP8)",
                 tmp.path(), {"ck"});
  expect_refusal(run_kiln(build + " --target cuda"),
                 "checkpoint " + ck + " has quant_algo FP8: the cuda target has no FP8 GEMM kernel yet", tmp.path(),
                 {"ck"});
  auto j = read_json_file(ck + "/config.json");
  j["quantization"]["quant_algo"] = "FP4";
  write_json_file(ck + "/config.json", j);
  expect_refusal(run_kiln(build),
                 ck + "/config.json: quantization.quant_algo 'FP4': unknown (expected null, FP8, "
                      "FP8_PER_CHANNEL_PER_TOKEN, W8A8_SQ_PER_CHANNEL_PER_TOKEN, W8A16, W4A16, W4A16_AWQ, W4A16_GPTQ)",
                 tmp.path(), {"ck"});
}

TEST(QuantRankCli, BuildRefusesEachQuantizedCheckpointType) {
  TempDir tmp;
  ModelConfig c = tiny_config("llama");
  c.quant = quant(QuantAlgo::W4A16_AWQ, 4, KvCacheQuantAlgo::FP8);
  write_checkpoint(tmp / "ck", c);
  expect_refusal(run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "engine") + " --target cuda"),
                 "checkpoint " + (tmp / "ck") + " has quant_algo W4A16_AWQ and kv_cache_quant_algo FP8: the cuda target "
                                                "has no int4 AWQ (W4A16_AWQ) GEMM kernel and no FP8 KV-cache attention "
                                                "kernel yet",
                 tmp.path(), {"ck"});
}

TEST(QuantRankCli, RunRefusesAnEngineOfTwoRanks) {
  TempDir tmp;
  const std::string ck = converted(tmp, [](auto&) {});
  auto r = run_kiln("build --checkpoint " + ck + " --output " + (tmp / "engine") + " --max-seq-len 32");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = read_json_file(tmp / "engine/engine.json");
  j["model"]["mapping"] = {{"tp_size", 2}};
  write_json_file(tmp / "engine/engine.json", j);
  fs::copy_file(tmp / "engine/rank0.safetensors", tmp / "engine/rank1.safetensors");
  r = run_kiln("run --engine " + (tmp / "engine") + " --input-ids 5,17 --max-new-tokens 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.out, "error: engine " + (tmp / "engine") + " has tp_size 2: tensor parallelism is not supported yet (one "
                                                         "rank only)\n");
}

}  // namespace
}  // namespace kiln::test
