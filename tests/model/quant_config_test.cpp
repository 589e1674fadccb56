// QuantConfig: the `quantization` block (TensorRT-LLM's algorithm names), its refusals, and the scheme each
// quant_algo gives a linear layer.
#include "model/quant.h"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "core/error.h"

using json = nlohmann::json;

namespace kiln {
namespace {

using test::error_of;

TEST(QuantConfig, NullBlockIsNoQuantization) {
  const QuantConfig q = quant_config_from_json(
      json::parse(R"({"quant_algo": null, "kv_cache_quant_algo": null, "group_size": null})"), "c.json");
  EXPECT_EQ(q, QuantConfig{});
  EXPECT_FALSE(q.any());
  EXPECT_EQ(
      quant_config_to_json(q),
      json::parse(R"({"quant_algo": null, "kv_cache_quant_algo": null, "group_size": null, "exclude_modules": []})"));
  EXPECT_FALSE(linear_quant_scheme(q).quantized());
}

TEST(QuantConfig, EveryAlgorithmRoundTrips) {
  const std::pair<const char*, int64_t> algos[] = {
      {"FP8", 0},   {"FP8_PER_CHANNEL_PER_TOKEN", 0}, {"W8A8_SQ_PER_CHANNEL_PER_TOKEN", 0}, {"W8A16", 0},
      {"W8A16", 64}, {"W4A16", 0}, {"W4A16", 128}, {"W4A16_AWQ", 128}, {"W4A16_GPTQ", 32}};
  for (auto [name, g] : algos)
    for (const char* kv : {"FP8", "INT8"}) {
      json j = {{"quant_algo", name}, {"kv_cache_quant_algo", kv}, {"group_size", g ? json(g) : json(nullptr)},
                {"exclude_modules", {"lm_head", "layers.*.mlp.down"}}};
      const QuantConfig q = quant_config_from_json(j, "c.json");
      EXPECT_EQ(quant_algo_name(q.quant_algo), name);
      EXPECT_EQ(kv_cache_quant_algo_name(q.kv_cache_quant_algo), kv);
      EXPECT_EQ(q.group_size, g);
      EXPECT_EQ(quant_config_to_json(q), j);
      EXPECT_EQ(quant_config_from_json(quant_config_to_json(q), "c.json"), q);
    }
}

TEST(QuantConfig, UnknownNamesAndFieldsAreRefusedByName) {
  auto err = [](const char* text) {
    return error_of([&] { quant_config_from_json(json::parse(text), "ck/config.json"); });
  };
  EXPECT_EQ(err(R"({"quant_algo": "FP4"})"),
            "ck/config.json: quantization.quant_algo 'FP4': unknown (expected null, FP8, FP8_PER_CHANNEL_PER_TOKEN, "
            "W8A8_SQ_PER_CHANNEL_PER_TOKEN, W8A16, W4A16, W4A16_AWQ, W4A16_GPTQ)");
  EXPECT_NE(err(R"({"quant_algo": "fp8"})").find("quant_algo 'fp8': unknown"), std::string::npos) << "names are exact";
  EXPECT_EQ(err(R"({"kv_cache_quant_algo": "INT4"})"),
            "ck/config.json: quantization.kv_cache_quant_algo 'INT4': unknown (expected null, FP8, INT8)");
  EXPECT_NE(err(R"({"quant_algo": 8})").find("quantization.quant_algo 8: expected a string or null"),
            std::string::npos);
  EXPECT_NE(err(R"({"has_zero_point": true})").find("quantization.has_zero_point: unknown field"), std::string::npos);
  EXPECT_NE(err(R"({"quant_algo": "W4A16", "group_size": "128"})").find("group_size \"128\": expected an integer"),
            std::string::npos);
  EXPECT_NE(err(R"({"quant_algo": "W4A16", "group_size": 0})").find("group_size 0 must be positive"),
            std::string::npos);
  EXPECT_NE(err(R"({"exclude_modules": "lm_head"})").find("exclude_modules \"lm_head\": expected a list"),
            std::string::npos);
  EXPECT_NE(err(R"({"exclude_modules": [3]})").find("3 is not a module name"), std::string::npos);
  EXPECT_NE(err(R"({"exclude_modules": [""]})").find("an empty module name"), std::string::npos);
  EXPECT_NE(err(R"([])").find("'quantization' must be an object"), std::string::npos);
}

TEST(QuantConfig, GroupSizeRules) {
  auto err = [](const char* text) { return error_of([&] { quant_config_from_json(json::parse(text), "c.json"); }); };
  EXPECT_NE(
      err(R"({"quant_algo": "W4A16_AWQ"})").find("group_size is null but quant_algo W4A16_AWQ quantizes per group"),
      std::string::npos);
  EXPECT_NE(err(R"({"quant_algo": "W4A16_GPTQ", "group_size": null})").find("W4A16_GPTQ quantizes per group"),
            std::string::npos);
  EXPECT_NE(err(R"({"quant_algo": "FP8", "group_size": 128})").find("quant_algo FP8 does not quantize per group"),
            std::string::npos);
  EXPECT_NE(err(R"({"group_size": 128})").find("quant_algo null does not quantize per group"), std::string::npos);
  EXPECT_EQ(err(R"({"quant_algo": "W8A16", "group_size": 128})"), "");
}

TEST(QuantConfig, SchemePerAlgorithm) {
  auto scheme = [](QuantAlgo a, int64_t g = 0) {
    QuantConfig q;
    q.quant_algo = a;
    q.group_size = g;
    return linear_quant_scheme(q);
  };
  const QuantScheme fp8 = scheme(QuantAlgo::FP8);
  EXPECT_EQ(fp8.granularity, QuantGranularity::PerTensor);
  EXPECT_EQ(fp8.weight_dtype, DType::F8_E4M3);
  EXPECT_EQ(fp8.activations, ActQuant::PerTensorStatic);
  EXPECT_TRUE(fp8.input_scale);
  EXPECT_EQ(fp8.scale_shape({}, 6, 4), (std::vector<int64_t>{1}));
  const QuantScheme rowwise = scheme(QuantAlgo::FP8_PER_CHANNEL_PER_TOKEN);
  EXPECT_EQ(rowwise.granularity, QuantGranularity::PerChannel);
  EXPECT_EQ(rowwise.activations, ActQuant::PerTokenDynamic);
  EXPECT_FALSE(rowwise.input_scale);
  EXPECT_EQ(rowwise.scale_shape({3}, 6, 4), (std::vector<int64_t>{3, 6}));
  const QuantScheme sq = scheme(QuantAlgo::W8A8_SQ_PER_CHANNEL_PER_TOKEN);
  EXPECT_EQ(sq.weight_dtype, DType::I8);
  EXPECT_EQ(sq.act_dtype, DType::I8);
  EXPECT_FALSE(sq.pre_quant_scale) << "SmoothQuant's factors are folded into the preceding ops";
  const QuantScheme w8 = scheme(QuantAlgo::W8A16);
  EXPECT_EQ(w8.granularity, QuantGranularity::PerChannel);
  EXPECT_EQ(w8.activations, ActQuant::None);
  EXPECT_EQ(w8.data_shape({}, 6, 4), (std::vector<int64_t>{6, 4}));
  const QuantScheme w4 = scheme(QuantAlgo::W4A16, 2);
  EXPECT_EQ(w4.granularity, QuantGranularity::PerGroup);
  EXPECT_EQ(w4.packing, WeightPacking::Int4x2);
  EXPECT_EQ(w4.weight_dtype, DType::I4X2);
  EXPECT_EQ(w4.data_shape({}, 6, 4), (std::vector<int64_t>{6, 2}));
  EXPECT_EQ(w4.scale_shape({}, 6, 4), (std::vector<int64_t>{6, 2}));
  EXPECT_EQ(scheme(QuantAlgo::W4A16).granularity, QuantGranularity::PerChannel);
  const QuantScheme awq = scheme(QuantAlgo::W4A16_AWQ, 2);
  EXPECT_TRUE(awq.pre_quant_scale);
  EXPECT_FALSE(awq.zero_point);
  const QuantScheme gptq = scheme(QuantAlgo::W4A16_GPTQ, 2);
  EXPECT_TRUE(gptq.zero_point);
  EXPECT_FALSE(gptq.pre_quant_scale);
}

TEST(QuantConfig, KvCacheDtypeAndExclusionPatterns) {
  QuantConfig q;
  EXPECT_EQ(kv_cache_dtype(q, DType::BF16), DType::BF16);
  q.kv_cache_quant_algo = KvCacheQuantAlgo::FP8;
  EXPECT_EQ(kv_cache_dtype(q, DType::BF16), DType::F8_E4M3);
  q.kv_cache_quant_algo = KvCacheQuantAlgo::INT8;
  EXPECT_EQ(kv_cache_dtype(q, DType::F32), DType::I8);
  EXPECT_TRUE(module_pattern_matches("lm_head", "lm_head"));
  EXPECT_FALSE(module_pattern_matches("lm_head", "lm_head2"));
  EXPECT_TRUE(module_pattern_matches("layers.*.mlp.down", "layers.11.mlp.down"));
  EXPECT_FALSE(module_pattern_matches("layers.*.mlp.down", "layers.11.mlp.gate_up"));
  EXPECT_TRUE(module_pattern_matches("*", "layers.0.attention.qkv"));
  EXPECT_TRUE(module_pattern_matches("layers.1*", "layers.12.moe.down"));
  EXPECT_FALSE(module_pattern_matches("layers.1*", "layers.2.moe.down"));
  q.exclude_modules = {"lm_head", "layers.0.*"};
  EXPECT_TRUE(q.excludes("layers.0.attention.dense"));
  EXPECT_FALSE(q.excludes("layers.10.attention.dense"));
}

}  // namespace
}  // namespace kiln
