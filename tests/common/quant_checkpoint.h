// Small kiln checkpoints written by tests, with any quantization and mapping: every tensor of expected_weights gets
// deterministic pseudo-random bytes of its dtype (float tensors F16; fp8 data quantized from floats with the
// saturating cast; int8 and int4 data, zero points in their range; positive F32 scales), kept for comparison.
#pragma once
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/config.h"
#include "model/weight_file.h"
#include "model/weights.h"

namespace kiln::test {

// A decoder small enough to write in microseconds: "llama" (SiLU-gated MLP, untied lm_head), "gpt2" (GELU fc,
// biases, learned positions), "mixtral" (MoE experts).
inline ModelConfig tiny_config(const std::string& kind) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.dtype = DType::F16;
  c.vocab_size = 32;
  c.hidden_size = 8;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.intermediate_size = 16;
  c.max_position_embeddings = 64;
  if (kind == "gpt2") {
    c.architecture = "GPT2LMHeadModel";
    c.norm = NormType::LayerNorm;
    c.activation = Activation::GeluTanh;
    c.position = PositionType::Learned;
    c.num_kv_heads = 2;
    c.qkv_bias = c.dense_bias = c.mlp_bias = c.norm_bias = true;
  } else if (kind == "mixtral") {
    c.architecture = "MixtralForCausalLM";
    c.num_experts = 3;
    c.experts_top_k = 2;
  }
  return c;
}

inline QuantConfig quant(QuantAlgo a, int64_t group_size = 0, KvCacheQuantAlgo kv = KvCacheQuantAlgo::None,
                         std::vector<std::string> exclude = {}) {
  QuantConfig q;
  q.quant_algo = a;
  q.group_size = group_size;
  q.kv_cache_quant_algo = kv;
  q.exclude_modules = std::move(exclude);
  return q;
}

struct WrittenTensor {
  DType dtype;
  std::vector<uint8_t> bytes;
};

// The bytes a test writes for one tensor.
inline WrittenTensor tensor_bytes(const WeightSpec& s, DType float_dtype, std::mt19937& rng) {
  int64_t n = 1;
  for (auto d : s.shape) n *= d;
  std::uniform_real_distribution<float> val(-2.0f, 2.0f), pos(0.01f, 0.5f);
  std::uniform_int_distribution<int> i8(-127, 127), i4(-8, 7);
  WrittenTensor t{s.quant ? s.dtype : float_dtype, {}};
  t.bytes.resize(size_t(n) * dtype_size(t.dtype));
  for (int64_t i = 0; i < n; ++i) {
    uint8_t* b = t.bytes.data() + size_t(i) * dtype_size(t.dtype);
    const bool scale = s.name.find("_scale") != std::string::npos;
    switch (t.dtype) {
      case DType::F16: {
        const uint16_t h = f32_to_f16(val(rng));
        std::memcpy(b, &h, 2);
        break;
      }
      case DType::F32: {
        const float f = scale ? pos(rng) : val(rng);
        std::memcpy(b, &f, 4);
        break;
      }
      case DType::F8_E4M3: *b = f32_to_f8e4m3(val(rng) * 300.0f, Fp8Overflow::Saturate); break;
      case DType::I8: *b = uint8_t(int8_t(s.name.find("weight_zero") != std::string::npos ? i4(rng) : i8(rng))); break;
      case DType::I4X2: *b = pack_int4x2(i4(rng), i4(rng)); break;
      default: throw std::runtime_error("tensor_bytes: dtype " + std::string(dtype_name(t.dtype)));
    }
  }
  return t;
}

// Writes DIR (config.json with c's mapping and quantization; rank{N}.safetensors for each N in `ranks`, the same
// tensors in each) and returns the bytes written per tensor name.
inline std::map<std::string, WrittenTensor> write_checkpoint(const std::string& dir, const ModelConfig& c,
                                                             std::vector<int64_t> ranks = {0}) {
  std::filesystem::create_directories(dir);
  write_checkpoint_config(dir + "/config.json", c);
  std::mt19937 rng(1234);
  std::map<std::string, WrittenTensor> out;
  for (auto& s : expected_weights(c)) out.emplace(s.name, tensor_bytes(s, c.dtype, rng));
  for (int64_t r : ranks) {
    WeightFileWriter w(c, "kiln-checkpoint");
    for (auto& [name, t] : out) w.add(name, t.dtype, t.bytes);
    w.write(dir + "/" + rank_file_name(r));
  }
  return out;
}

}  // namespace kiln::test
