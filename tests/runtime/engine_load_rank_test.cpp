// Engine load with ranks and quantization: the rank's file and device ordinal, and the refusals (more than one rank,
// a missing rank file, a quantization no kernel runs, a device the cpu backend does not have); the KV cache's dtype.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "build/engine_builder.h"
#include "common/quant_checkpoint.h"
#include "common/test_util.h"
#include "core/error.h"
#include "io/json_file.h"
#include "runtime/backend_factory.h"
#include "runtime/engine.h"
#include "runtime/kv_cache.h"

namespace fs = std::filesystem;

namespace kiln::test {
namespace {

// A cpu engine of the tiny llama in DIR/engine.
std::string tiny_engine(const TempDir& tmp) {
  write_checkpoint(tmp / "ck", tiny_config("llama"));
  BuildOptions o;
  o.checkpoint_dir = tmp / "ck";
  o.output_dir = tmp / "engine";
  o.limits.max_seq_len = 32;
  build_engine(o);
  return o.output_dir;
}

// A copy of the engine with engine.json edited.
std::string edited(const TempDir& tmp, const std::string& engine, const std::string& name,
                   const std::function<void(nlohmann::json&)>& edit) {
  const std::string dir = tmp / name;
  fs::copy(engine, dir, fs::copy_options::recursive);
  auto j = read_json_file(dir + "/engine.json");
  edit(j);
  write_json_file(dir + "/engine.json", j);
  return dir;
}

TEST(EngineLoadRanks, LoadsItsRankOnItsDevice) {
  TempDir tmp;
  const std::string engine = tiny_engine(tmp);
  auto e = Engine::load(engine, EngineLoadOptions{.num_threads = 1});
  EXPECT_EQ(e->mapping().world_size(), 1);
  EXPECT_EQ(e->mapping().rank, 0);
  EXPECT_EQ(e->mapping().device_ordinal(), 0);
  EXPECT_TRUE(e->has_weight("layers.1.mlp.down.weight"));
  EXPECT_EQ(error_of([&] { Engine::load(engine, EngineLoadOptions{.num_threads = 1, .rank = 1}); }),
            engine + "/engine.json: rank 1 is outside the mapping's 1 ranks (tp_size 1 x pp_size 1)");
  EXPECT_EQ(error_of([&] { Engine::load(engine, EngineLoadOptions{.num_threads = 1, .device = 1}); }),
            "target 'cpu': device 1: the cpu backend has no device ordinals (one rank runs on 0)");
}

TEST(EngineLoadRanks, MoreThanOneRankIsRefused) {
  TempDir tmp;
  const std::string engine = tiny_engine(tmp);
  const std::string tp2 = edited(tmp, engine, "tp2", [](auto& j) { j["model"]["mapping"]["tp_size"] = 2; });
  EXPECT_EQ(error_of([&] { Engine::load(tp2, 1); }),
            tp2 + "/engine.json: mapping.world_size 1 is not tp_size 2 x pp_size 1") << "an edited engine.json";
  const std::string tp2w = edited(tmp, engine, "tp2w", [](auto& j) {
    j["model"]["mapping"] = {{"tp_size", 2}, {"pp_size", 1}, {"world_size", 2}};
  });
  EXPECT_EQ(error_of([&] { Engine::load(tp2w, 1); }),
            tp2w + "/rank1.safetensors: missing (the mapping has 2 ranks: tp_size 2 x pp_size 1)");
  fs::copy_file(tp2w + "/rank0.safetensors", tp2w + "/rank1.safetensors");
  EXPECT_EQ(error_of([&] { Engine::load(tp2w, 1); }),
            "engine " + tp2w + " has tp_size 2: tensor parallelism is not supported yet (one rank only)");
  const std::string pp2 = edited(tmp, engine, "pp2", [](auto& j) { j["model"]["mapping"] = {{"pp_size", 2}}; });
  fs::copy_file(pp2 + "/rank0.safetensors", pp2 + "/rank1.safetensors");
  EXPECT_EQ(error_of([&] { Engine::load(pp2, 1); }),
            "engine " + pp2 + " has pp_size 2: pipeline parallelism is not supported yet (one rank only)");
  const std::string none = edited(tmp, engine, "none", [](auto&) {});
  fs::remove(none + "/rank0.safetensors");
  EXPECT_EQ(error_of([&] { Engine::load(none, 1); }),
            none + "/rank0.safetensors: missing (the mapping has 1 rank: tp_size 1 x pp_size 1)");
}

TEST(EngineLoadRanks, QuantizationWithoutKernelsIsRefused) {
  TempDir tmp;
  const std::string engine = tiny_engine(tmp);
  // The cuda target has no quantized kernel yet: refused before any backend is made.
  const std::string fp8 = edited(tmp, engine, "fp8", [](auto& j) {
    j["target"] = "cuda";
    j["gpu_arch"] = "sm_90";
    j["model"]["quantization"]["quant_algo"] = "FP8";
  });
  EXPECT_EQ(error_of([&] { Engine::load(fp8, 1); }),
            "engine " + fp8 + " has quant_algo FP8: the cuda target has no FP8 GEMM kernel yet");
  const std::string kv = edited(tmp, engine, "kv", [](auto& j) {
    j["target"] = "cuda";
    j["gpu_arch"] = "sm_90";
    j["model"]["quantization"]["kv_cache_quant_algo"] = "INT8";
  });
  EXPECT_EQ(error_of([&] { Engine::load(kv, 1); }),
            "engine " + kv + " has kv_cache_quant_algo INT8: the cuda target has no INT8 KV-cache attention kernel yet");
  // The cpu target runs them: this edited engine gets as far as its weight file, whose weights are float.
  const std::string cpu8 =
      edited(tmp, engine, "cpu8", [](auto& j) { j["model"]["quantization"]["quant_algo"] = "FP8"; });
  EXPECT_NE(error_of([&] { Engine::load(cpu8, 1); }).find("expected F8_E4M3 (quant_algo FP8)"), std::string::npos);
  const std::string bad =
      edited(tmp, engine, "bad", [](auto& j) { j["model"]["quantization"]["quant_algo"] = "NVFP4"; });
  EXPECT_NE(error_of([&] { Engine::load(bad, 1); }).find("quantization.quant_algo 'NVFP4': unknown"),
            std::string::npos);
}

TEST(KvCache, DtypeAndScalesFollowTheQuantization) {
  auto be = make_backend("cpu", 1);
  ModelConfig m = tiny_config("llama");
  KvCacheDesc f = allocate_kv_cache(*be, m, 4, 8);
  EXPECT_EQ(f.dtype, DType::F32) << "the compute dtype";
  EXPECT_EQ(f.pool.dtype, DType::F32);
  EXPECT_TRUE(f.scales.empty());
  m.quant.kv_cache_quant_algo = KvCacheQuantAlgo::FP8;
  EXPECT_EQ(error_of([&] { allocate_kv_cache(*be, m, 4, 8); }),
            "KV cache: kv_cache_quant_algo FP8 needs F32 scales [2, 2], not none");
  Tensor scales = be->alloc(DType::F32, {2, 2});  // [layers, k | v]
  KvCacheDesc q = allocate_kv_cache(*be, m, 4, 8, scales);
  EXPECT_EQ(q.dtype, DType::F8_E4M3);
  EXPECT_EQ(q.pool.dtype, DType::F8_E4M3);
  EXPECT_EQ(q.pool.nbytes(), size_t(2 * 4 * 2 * 1 * 8 * 4)) << "one byte per element";
  EXPECT_EQ(q.scales.data, scales.data);
  m.quant.kv_cache_quant_algo = KvCacheQuantAlgo::INT8;
  EXPECT_EQ(allocate_kv_cache(*be, m, 4, 8, scales).pool.dtype, DType::I8);
  // The cpu ops read and write it (tests/backend/cpu_quant_kv_test.cpp); a cache without its scales is refused.
  StepMeta meta;
  AttentionParams a;
  a.meta = &meta;
  a.cache = q;
  a.cache.scales = Tensor();
  EXPECT_EQ(error_of([&] { be->attention(a); }),
            "cpu backend: attention over a float8_e4m3fn KV cache without F32 scales [2, 2]");
  m.quant.kv_cache_quant_algo = KvCacheQuantAlgo::None;
  EXPECT_NE(error_of([&] { allocate_kv_cache(*be, m, 4, 8, scales); }).find("scales [2, 2] for a float cache"),
            std::string::npos);
}

TEST(CpuBackendQuant, KeepsQuantizedWeightsAndRefusesThemWithoutAScheme) {
  auto be = make_backend("cpu", 1);
  LinearParams p;
  p.x = be->alloc(DType::F32, {1, 4});
  p.weight = be->alloc(DType::I8, {2, 4});
  p.out = be->alloc(DType::F32, {1, 2});
  EXPECT_EQ(error_of([&] { be->linear(p); }), "linear: a int8 weight without a quantization scheme");
  p.quant = linear_quant_scheme(quant(QuantAlgo::W8A16));
  EXPECT_EQ(error_of([&] { be->linear(p); }), "linear: weight_scale must be float32 [2], not missing");
  const uint8_t bytes[4] = {0x38, 0x38, 0x38, 0x38};
  TensorView v;
  v.name = "layers.0.mlp.down.weight";
  v.dtype = DType::F8_E4M3;
  v.shape = {2, 2};
  v.data = bytes;
  v.nbytes = 4;
  const Tensor t = be->load_weight(weight_view(v));
  EXPECT_EQ(t.dtype, DType::F8_E4M3) << "quantized data stays as stored";
  EXPECT_EQ(std::memcmp(t.data, bytes, 4), 0);
}

}  // namespace
}  // namespace kiln::test
