#include "model/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/rope.h"

using json = nlohmann::json;

namespace kiln {
namespace {

json llama_v4() {
  // transformers-4 style: rope_theta and rope_scaling at the top level.
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16", "vocab_size": 1000, "hidden_size": 64,
    "num_hidden_layers": 3, "num_attention_heads": 8, "num_key_value_heads": 2, "intermediate_size": 128,
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192},
    "tie_word_embeddings": true, "eos_token_id": [128001, 128008], "bos_token_id": 128000})");
}

TEST(HfConfig, Transformers4Style) {
  ModelConfig c = config_from_hf(llama_v4(), "config.json");
  EXPECT_EQ(c.dtype, DType::BF16);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_DOUBLE_EQ(c.rope.theta, 500000.0);
  EXPECT_EQ(c.rope.scaling, RopeScaling::Llama3);
  EXPECT_DOUBLE_EQ(c.rope.factor, 32.0);
  EXPECT_EQ(c.rope.original_max_position, 8192);
  EXPECT_EQ(c.rope.freq_dtype, DType::F32) << "RoPE frequencies stay float32 whatever the checkpoint's dtype";
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008}));
}

TEST(HfConfig, Transformers5StyleAndHeadDimOverride) {
  json j = llama_v4();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_theta", 10000.0}, {"rope_type", "linear"}, {"factor", 2.0}};
  j["head_dim"] = 16;
  ModelConfig c = config_from_hf(j, "config.json");
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.q_size(), 128);
  EXPECT_EQ(c.rope.scaling, RopeScaling::Linear);
  EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);
}

TEST(HfConfig, SlidingWindowRules) {
  json j = llama_v4();
  j["architectures"] = {"MistralForCausalLM"};
  j["sliding_window"] = 4096;
  EXPECT_EQ(config_from_hf(j, "c").sliding_window, 4096);
  j["architectures"] = {"Qwen2ForCausalLM"};
  EXPECT_EQ(config_from_hf(j, "c").sliding_window, 0) << "Qwen applies the window only with use_sliding_window";
  EXPECT_TRUE(config_from_hf(j, "c").qkv_bias);
  j["use_sliding_window"] = true;
  j["max_window_layers"] = 3;
  EXPECT_EQ(config_from_hf(j, "c").sliding_window, 4096);
}

TEST(HfConfig, Errors) {
  json j = llama_v4();
  j["architectures"] = {"BertModel"};
  EXPECT_THROW(config_from_hf(j, "c"), Error);
  j = llama_v4();
  j.erase("hidden_size");
  try {
    config_from_hf(j, "x/config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden_size"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("x/config.json"), std::string::npos);
  }
  j = llama_v4();
  j["num_key_value_heads"] = 3;
  EXPECT_THROW(config_from_hf(j, "c"), Error);
  j = llama_v4();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_THROW(config_from_hf(j, "c"), Error);
}

TEST(KilnConfig, JsonRoundTrip) {
  ModelConfig c = config_from_hf(llama_v4(), "c");
  ModelConfig d = config_from_json(config_to_json(c), "k");
  EXPECT_EQ(config_to_json(c), config_to_json(d));
}

TEST(Rope, DefaultFrequenciesClosedForm) {
  RopeConfig r;
  r.theta = 10000.0;
  auto f = rope_inv_freq(r, 8);
  ASSERT_EQ(f.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f[i], std::pow(10000.0, -2.0 * i / 8), 1e-7);
}

TEST(Rope, Llama3ScalingClosedForm) {
  RopeConfig r;
  r.theta = 500000.0;
  r.scaling = RopeScaling::Llama3;
  r.factor = 8;
  r.low_freq_factor = 1;
  r.high_freq_factor = 4;
  r.original_max_position = 64;
  const int hd = 32;
  auto f = rope_inv_freq(r, hd);
  for (int i = 0; i < hd / 2; ++i) {
    double base = std::pow(500000.0, -2.0 * i / hd), wl = 2 * M_PI / base, want;
    if (wl < 64.0 / 4) want = base;                  // high frequency: unchanged
    else if (wl > 64.0 / 1) want = base / 8;         // low frequency: divided by the factor
    else {
      double s = (64.0 / wl - 1) / (4 - 1);
      want = (1 - s) * base / 8 + s * base;
    }
    EXPECT_NEAR(f[i], want, 1e-6 * want) << i;
  }
}

TEST(Rope, FrequenciesRoundedToCheckpointDtype) {
  RopeConfig r;
  r.freq_dtype = DType::BF16;
  for (float v : rope_inv_freq(r, 64)) EXPECT_EQ(v, bf16_to_f32(f32_to_bf16(v)));
}

}  // namespace
}  // namespace kiln
