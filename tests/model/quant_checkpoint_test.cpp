// A kiln checkpoint of each quantized type, written by the test, round-trips through the format: config.json's
// quantization and mapping blocks, and every tensor's dtype and bytes (quantized data, scales, zero points,
// pre_quant_scale, input_scale, KV-cache scales), with packed int4 stored as U8 and its packing recorded.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <set>

#include "common/quant_checkpoint.h"
#include "common/test_util.h"
#include "core/error.h"
#include "io/safetensors.h"

namespace kiln::test {
namespace {

struct NamedShape {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

struct Case {
  std::string name;
  std::string kind;  // tiny_config
  QuantConfig q;
  std::vector<NamedShape> expect;  // a few tensors the format must hold, with dtype and shape
};

// tiny_config: H 8, I 16, q 8 (2 heads x 4), qkv 16 (llama: 2 + 2 x 1 kv heads), gpt2 qkv 24, V 32, E 3.
std::vector<Case> cases() {
  const DType F32 = DType::F32, F16 = DType::F16, F8 = DType::F8_E4M3, I8 = DType::I8, I4 = DType::I4X2;
  return {
      {"fp8_per_tensor", "llama", quant(QuantAlgo::FP8),
       {{"layers.0.attention.qkv.weight", F8, {16, 8}},
        {"layers.0.attention.qkv.weight_scale", F32, {1}},
        {"layers.0.attention.qkv.input_scale", F32, {1}},
        {"layers.1.mlp.down.weight", F8, {8, 16}},
        {"lm_head.weight", F8, {32, 8}},
        {"embed.weight", F16, {32, 8}},
        {"layers.0.input_norm.weight", F16, {8}}}},
      {"fp8_rowwise", "llama", quant(QuantAlgo::FP8_PER_CHANNEL_PER_TOKEN),
       {{"layers.0.attention.dense.weight", F8, {8, 8}},
        {"layers.0.attention.dense.weight_scale", F32, {8}},
        {"layers.0.mlp.gate_up.weight_scale", F32, {32}}}},
      {"int8_smoothquant", "llama", quant(QuantAlgo::W8A8_SQ_PER_CHANNEL_PER_TOKEN),
       {{"layers.1.mlp.gate_up.weight", I8, {32, 8}}, {"layers.1.mlp.gate_up.weight_scale", F32, {32}}}},
      {"int8_weight_only", "gpt2", quant(QuantAlgo::W8A16),
       {{"layers.0.mlp.fc.weight", I8, {16, 8}},
        {"layers.0.mlp.fc.weight_scale", F32, {16}},
        {"layers.0.mlp.fc.bias", F16, {16}},
        {"layers.0.attention.qkv.weight", I8, {24, 8}},
        {"pos_embed.weight", F16, {64, 8}}}},
      {"int4_weight_only_per_group", "llama", quant(QuantAlgo::W4A16, 4),
       {{"layers.0.attention.qkv.weight", I4, {16, 4}},
        {"layers.0.attention.qkv.weight_scale", F32, {16, 2}},
        {"layers.0.mlp.down.weight", I4, {8, 8}},
        {"layers.0.mlp.down.weight_scale", F32, {8, 4}}}},
      {"int4_awq", "mixtral", quant(QuantAlgo::W4A16_AWQ, 4),
       {{"layers.1.moe.gate_up.weight", I4, {3, 32, 4}},
        {"layers.1.moe.gate_up.weight_scale", F32, {3, 32, 2}},
        {"layers.1.moe.gate_up.pre_quant_scale", F32, {3, 8}},
        {"layers.1.moe.down.pre_quant_scale", F32, {3, 16}},
        {"layers.0.attention.qkv.pre_quant_scale", F32, {8}},
        {"layers.1.moe.router.weight", F16, {3, 8}}}},
      {"int4_gptq_lm_head_excluded", "llama", quant(QuantAlgo::W4A16_GPTQ, 8, KvCacheQuantAlgo::None, {"lm_head"}),
       {{"layers.0.mlp.down.weight_zero", I8, {8, 2}},
        {"layers.0.mlp.down.weight_scale", F32, {8, 2}},
        {"layers.0.attention.qkv.weight_zero", I8, {16, 1}},
        {"lm_head.weight", F16, {32, 8}}}},
      {"fp8_kv_cache", "llama", quant(QuantAlgo::None, 0, KvCacheQuantAlgo::FP8),
       {{"layers.0.attention.kv_cache_scale", F32, {2}},
        {"layers.1.attention.kv_cache_scale", F32, {2}},
        {"layers.0.attention.qkv.weight", F16, {16, 8}}}},
      {"int8_kv_cache", "gpt2", quant(QuantAlgo::None, 0, KvCacheQuantAlgo::INT8),
       {{"layers.1.attention.kv_cache_scale", F32, {2}}}},
      {"fp8_weights_and_kv_cache", "llama", quant(QuantAlgo::FP8, 0, KvCacheQuantAlgo::FP8),
       {{"layers.0.attention.kv_cache_scale", F32, {2}}, {"layers.0.attention.qkv.input_scale", F32, {1}}}},
  };
}

class QuantCheckpoint : public ::testing::TestWithParam<Case> {};

TEST_P(QuantCheckpoint, RoundTripsBitExact) {
  const Case& k = GetParam();
  TempDir tmp;
  ModelConfig c = tiny_config(k.kind);
  c.quant = k.q;
  const std::string dir = tmp / "ck";
  const auto written = write_checkpoint(dir, c);

  const ModelConfig r = read_checkpoint_config(dir);
  EXPECT_EQ(r.quant, k.q);
  EXPECT_EQ(r.mapping, Mapping{});
  const WeightFile f(dir + "/" + rank_file_name(0), r);
  std::set<std::string> seen;
  for (auto& spec : f.specs()) {
    const TensorView& t = f.get(spec.name);
    const WrittenTensor& w = written.at(spec.name);
    ASSERT_EQ(t.dtype, w.dtype) << spec.name;
    ASSERT_EQ(t.nbytes, w.bytes.size()) << spec.name;
    ASSERT_EQ(std::memcmp(t.data, w.bytes.data(), t.nbytes), 0) << spec.name;
    seen.insert(spec.name);
  }
  EXPECT_EQ(seen.size(), written.size());
  for (auto& e : k.expect) {
    ASSERT_TRUE(seen.count(e.name)) << e.name;
    EXPECT_EQ(f.get(e.name).dtype, e.dtype) << e.name;
    EXPECT_EQ(f.get(e.name).shape, e.shape) << e.name;
  }
  // On disk: packed int4 is U8 with its packing recorded; fp8 is F8_E4M3.
  SafetensorsFile raw(dir + "/" + rank_file_name(0));
  bool int4 = false;
  for (auto& [name, w] : written) {
    const DType disk = raw.get(name).dtype;
    if (w.dtype == DType::I4X2) {
      int4 = true;
      EXPECT_EQ(disk, DType::U8) << name;
    } else {
      EXPECT_EQ(disk, w.dtype) << name;
    }
  }
  EXPECT_EQ(raw.metadata().count(kInt4PackingKey), int4 ? 1u : 0u);
  if (int4) {
    EXPECT_EQ(raw.metadata().at(kInt4PackingKey), "int4x2-low-first");
  }
  EXPECT_EQ(raw.metadata().at("format"), "kiln-checkpoint");
}

INSTANTIATE_TEST_SUITE_P(Types, QuantCheckpoint, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// The int4 nibble order on disk: element 2j of a row in the low nibble of byte j.
TEST(QuantCheckpointFormat, Int4NibbleOrderAlongTheInputDimension) {
  TempDir tmp;
  ModelConfig c = tiny_config("llama");
  c.quant = quant(QuantAlgo::W4A16);
  auto written = write_checkpoint(tmp / "ck", c);
  const auto& w = written.at("layers.0.attention.dense.weight");  // logical [8, 8] int4 -> [8, 4] bytes
  const WeightFile f(tmp / "ck/rank0.safetensors", c);
  const TensorView& t = f.get("layers.0.attention.dense.weight");
  ASSERT_EQ(t.shape, (std::vector<int64_t>{8, 4}));
  const auto* b = static_cast<const uint8_t*>(t.data);
  for (int64_t n = 0; n < 8; ++n)
    for (int64_t k = 0; k < 8; ++k) {
      const uint8_t byte = w.bytes[size_t(n * 4 + k / 2)];
      const int want = (k % 2 == 0) ? int(int8_t(uint8_t(byte << 4)) >> 4) : int(int8_t(byte) >> 4);
      ASSERT_EQ(k % 2 == 0 ? int4x2_lo(b[n * 4 + k / 2]) : int4x2_hi(b[n * 4 + k / 2]), want) << n << "," << k;
    }
}

TEST(QuantCheckpointFormat, BadFilesAreRefusedNamingTheFileAndTensor) {
  TempDir tmp;
  ModelConfig c = tiny_config("llama");
  c.quant = quant(QuantAlgo::W4A16_GPTQ, 4);
  auto written = write_checkpoint(tmp / "ck", c);
  const std::string file = tmp / "ck/rank0.safetensors";
  // Rewrites the file through `edit` (name, dtype, bytes), with or without the packing record.
  auto rewrite = [&](bool packing,
                     const std::function<void(SafetensorsWriter&, const std::string&, const WrittenTensor&)>& edit) {
    SafetensorsWriter w;
    w.set_metadata("format", "kiln-checkpoint");
    if (packing) w.set_metadata(kInt4PackingKey, kInt4Packing);
    for (auto& [name, t] : written) edit(w, name, t);
    w.write(file);
  };
  const std::vector<WeightSpec> specs = expected_weights(c);
  auto as_is = [&](SafetensorsWriter& w, const std::string& name, const WrittenTensor& t) {
    for (auto& s : specs)
      if (s.name == name) w.add(name, storage_dtype(t.dtype), s.shape, t.bytes);
  };
  rewrite(false, as_is);
  EXPECT_NE(error_of([&] { WeightFile(file, c); }).find(file + ": quant_algo W4A16_GPTQ stores int4 weights, but the "
                                                               "file records no 'kiln.int4_packing'"),
            std::string::npos);
  rewrite(true, [&](SafetensorsWriter& w, const std::string& name, const WrittenTensor& t) {
    if (name == "layers.1.mlp.down.weight_zero") {
      w.add(name, DType::F32, {8, 4}, std::vector<uint8_t>(8 * 4 * 4));  // zero points as floats
      return;
    }
    as_is(w, name, t);
  });
  EXPECT_EQ(error_of([&] { WeightFile(file, c); }),
            file + ": tensor 'layers.1.mlp.down.weight_zero' has dtype F32, expected I8 (quant_algo W4A16_GPTQ)");
  rewrite(true, [&](SafetensorsWriter& w, const std::string& name, const WrittenTensor& t) {
    if (name == "layers.0.attention.qkv.weight") {
      w.add(name, DType::I8, {16, 8}, std::vector<uint8_t>(16 * 8));  // int8 where the algorithm packs int4
      return;
    }
    as_is(w, name, t);
  });
  EXPECT_EQ(error_of([&] { WeightFile(file, c); }),
            file + ": tensor 'layers.0.attention.qkv.weight' has dtype I8, expected U8 (packed int4) (quant_algo "
                   "W4A16_GPTQ)");
  rewrite(true, [&](SafetensorsWriter& w, const std::string& name, const WrittenTensor& t) {
    if (name == "layers.0.attention.qkv.weight_scale") {
      w.add(name, DType::F32, {16}, std::vector<uint8_t>(16 * 4));  // per channel where the groups are 4 wide
      return;
    }
    as_is(w, name, t);
  });
  EXPECT_EQ(error_of([&] { WeightFile(file, c); }),
            file + ": tensor 'layers.0.attention.qkv.weight_scale' has shape [16], expected [16, 2]");
  rewrite(true, [&](SafetensorsWriter& w, const std::string& name, const WrittenTensor& t) {
    if (name != "layers.1.attention.dense.weight_scale") as_is(w, name, t);
  });
  EXPECT_EQ(error_of([&] { WeightFile(file, c); }), file + ": missing tensor 'layers.1.attention.dense.weight_scale'");

  // fp8 data in a checkpoint whose config does not quantize: never read as if it were a float weight.
  ModelConfig plain = tiny_config("llama");
  auto plain_written = write_checkpoint(tmp / "plain", plain);
  const std::string pfile = tmp / "plain/rank0.safetensors";
  {
    SafetensorsWriter w;
    for (auto& [name, t] : plain_written) {
      const auto spec_shape = SafetensorsFile(pfile).get(name).shape;
      if (name == "layers.0.mlp.down.weight") w.add(name, DType::F8_E4M3, spec_shape, std::vector<uint8_t>(8 * 16));
      else w.add(name, t.dtype, spec_shape, t.bytes);
    }
    w.write(pfile);
  }
  EXPECT_EQ(error_of([&] { WeightFile(pfile, plain); }),
            pfile + ": tensor 'layers.0.mlp.down.weight' has dtype F8_E4M3, expected a float type (F32, F16 or BF16): "
                    "the config's quantization (quant_algo null) does not quantize it");
}

TEST(QuantCheckpointFormat, WriterChecksEveryTensorAgainstItsSpec) {
  ModelConfig c = tiny_config("llama");
  c.quant = quant(QuantAlgo::FP8);
  WeightFileWriter w(c, "kiln-checkpoint");
  EXPECT_EQ(error_of([&] { w.add("layers.0.attention.qkv.weight", DType::F16, std::vector<uint8_t>(16 * 8 * 2)); }),
            "weight file: tensor 'layers.0.attention.qkv.weight' of dtype float16, expected float8_e4m3fn");
  EXPECT_EQ(error_of([&] { w.add("embed.weight", DType::I8, std::vector<uint8_t>(32 * 8)); }),
            "weight file: tensor 'embed.weight' of dtype int8, expected float32, float16 or bfloat16");
  EXPECT_EQ(error_of([&] { w.add("layers.0.attention.qkv.weight_zero", DType::I8, {}); }),
            "weight file: 'layers.0.attention.qkv.weight_zero' is not a tensor of this model");
  w.add("embed.weight", DType::F32, std::vector<uint8_t>(32 * 8 * 4));
  EXPECT_EQ(error_of([&] { w.add("embed.weight", DType::F32, std::vector<uint8_t>(32 * 8 * 4)); }),
            "weight file: tensor 'embed.weight' added twice");
  TempDir tmp;
  EXPECT_NE(error_of([&] { w.write(tmp / "rank0.safetensors"); }).find("was not written"), std::string::npos);
  // The safetensors writer itself refuses a dtype the format cannot name.
  SafetensorsWriter raw;
  EXPECT_NE(error_of([&] {
              raw.add("x", DType::I4X2, {2}, std::vector<uint8_t>(2));
            }).find("int4x2 has no safetensors dtype"),
            std::string::npos);
}

TEST(QuantCheckpointFormat, QuantizationIsCheckedAgainstTheModel) {
  ModelConfig c = tiny_config("llama");
  c.quant = quant(QuantAlgo::W4A16_AWQ, 3);
  EXPECT_EQ(error_of([&] { c.validate(); }),
            "model config: quantization.group_size 3 does not divide layers.0.attention.qkv's 8 input channels");
  c.quant = quant(QuantAlgo::W4A16_AWQ, 16);  // divides I = 16 but not H = 8
  EXPECT_NE(error_of([&] { c.validate(); }).find("group_size 16 does not divide layers.0.attention.qkv's 8"),
            std::string::npos);
  c.quant = quant(QuantAlgo::FP8, 0, KvCacheQuantAlgo::None, {"lm-head"});
  EXPECT_NE(error_of([&] { c.validate(); }).find("exclude_modules 'lm-head' names no linear layer of this model"),
            std::string::npos);
  c.quant = quant(QuantAlgo::FP8, 0, KvCacheQuantAlgo::None, {"layers.*.mlp.down", "lm_head"});
  EXPECT_EQ(error_of([&] { c.validate(); }), "");
  c.tie_embeddings = true;  // lm_head stays a module name (the embedding table, never quantized)
  EXPECT_EQ(error_of([&] { c.validate(); }), "");
  for (auto& l : linear_layers(c))
    EXPECT_EQ(l.scheme.quantized(), l.module.find("mlp.down") == std::string::npos) << l.module;
  // int4 packs pairs along K: an odd K (the attention output's 5 inputs here) cannot be packed, per channel too.
  ModelConfig g = tiny_config("gpt2");
  g.hidden_size = 6;
  g.num_heads = g.num_kv_heads = 1;
  g.head_dim = 5;
  g.quant = quant(QuantAlgo::W4A16);
  EXPECT_NE(
      error_of([&] { g.validate(); }).find("W4A16: layers.0.attention.dense has an odd number of input channels (5)"),
      std::string::npos);
}

TEST(QuantCheckpointFormat, MissingRankFileIsNamed) {
  TempDir tmp;
  ModelConfig c = tiny_config("llama");
  c.mapping.tp_size = 2;
  write_checkpoint(tmp / "ck", c, {0});
  EXPECT_EQ(error_of([&] { check_rank_files(tmp / "ck", c.mapping); }),
            tmp / "ck/rank1.safetensors" + ": missing (the mapping has 2 ranks: tp_size 2 x pp_size 1)");
  EXPECT_EQ(read_checkpoint_config(tmp / "ck").mapping, c.mapping) << "the mapping block round-trips";
  write_checkpoint(tmp / "ck2", c, {0, 1});
  EXPECT_EQ(error_of([&] { check_rank_files(tmp / "ck2", c.mapping); }), "");
}

}  // namespace
}  // namespace kiln::test
