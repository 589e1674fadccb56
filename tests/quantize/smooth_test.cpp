// SmoothQuant's folding (src/quantize/smooth.h) leaves the float model's function unchanged: an engine of the
// smoothed float weights gives the original engine's logits (fp32 rounding only) on llama (GQA 4/2) and qwen2
// (q/k/v biases, GQA 6/2, tied embeddings), with factors far from 1. And quantize_weight's closed forms.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "build/engine_builder.h"
#include "common/test_util.h"
#include "convert/convert.h"
#include "model/weight_file.h"
#include "quantize/quant_weights.h"
#include "quantize/smooth.h"
#include "runtime/kv_cache.h"
#include "runtime/model_runner.h"

namespace kiln::test {
namespace {

std::vector<float> logits_of(const std::string& ckpt, const std::string& engine_dir, const std::vector<int32_t>& ids) {
  BuildOptions bo;
  bo.checkpoint_dir = ckpt;
  bo.output_dir = engine_dir;
  bo.limits.max_seq_len = 64;
  build_engine(bo);
  auto e = Engine::load(engine_dir, 1);
  ModelRunner runner(*e, allocate_kv_cache(e->backend(), e->model(), 1, 64));
  std::vector<int32_t> table{0};
  const Tensor l = runner.step({SeqStep{ids, 0, &table, true, true}});
  return std::vector<float>(l.ptr<float>(), l.ptr<float>() + l.numel());
}

class Smooth : public ::testing::TestWithParam<std::string> {};

TEST_P(Smooth, FoldingKeepsTheFloatModelsOutputs) {
  TempDir tmp;
  ConvertOptions co;
  co.model_dir = model_dir(GetParam());
  co.output_dir = tmp / "ck";
  co.progress = false;
  convert_checkpoint(co);
  const ModelConfig c = read_checkpoint_config(tmp / "ck");
  std::map<std::string, FloatTensor> w;
  {
    const WeightFile f(tmp / "ck/rank0.safetensors", c);
    for (auto& s : f.specs()) {
      const TensorView& v = f.get(s.name);
      FloatTensor t{s.shape, std::vector<float>(static_cast<size_t>(v.numel()))};
      convert_to_f32(v.dtype, v.data, t.v.data(), t.v.size());
      w.emplace(s.name, std::move(t));
    }
  }
  const auto original = w;
  CalibStats st;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> amax(0.01f, 20.0f);
  for (const LinearSpec& l : linear_layers(c)) {
    LinearStats& s = st.linears[l.module];
    s.K = l.K;
    for (int64_t k = 0; k < l.K; ++k) s.amax.push_back(amax(rng));
  }
  smooth_checkpoint(w, c, st, 0.5);
  // The factors are far from 1: the norm weights and the v rows moved.
  const auto& n0 = original.at("layers.0.input_norm.weight").v;
  const auto& n1 = w.at("layers.0.input_norm.weight").v;
  double moved = 0;
  for (size_t i = 0; i < n0.size(); ++i) moved = std::max(moved, std::fabs(double(n1[i]) / n0[i] - 1.0));
  EXPECT_GT(moved, 0.5);

  ModelConfig cf = c;
  cf.dtype = DType::F32;
  std::filesystem::create_directories(tmp / "smooth");
  write_checkpoint_config(tmp / "smooth/config.json", cf);
  WeightFileWriter wr(cf, "kiln-checkpoint");
  for (auto& [name, t] : w) {
    std::vector<uint8_t> b(t.v.size() * 4);
    std::memcpy(b.data(), t.v.data(), b.size());
    wr.add(name, DType::F32, std::move(b));
  }
  wr.write(tmp / "smooth/rank0.safetensors");
  const std::vector<int32_t> ids = {1, 5, 17, 42, 99, 7, 300, 12, 64, 3};
  const auto a = logits_of(tmp / "ck", tmp / "e0", ids), b = logits_of(tmp / "smooth", tmp / "e1", ids);
  const size_t V = size_t(c.vocab_size);
  ASSERT_EQ(a.size(), ids.size() * V);
  for (size_t r = 0; r < ids.size(); ++r) EXPECT_LT(rel_err(&b[r * V], &a[r * V], V), 2e-5) << "row " << r;
}

INSTANTIATE_TEST_SUITE_P(Models, Smooth, ::testing::Values("llama", "qwen2"));

TEST(QuantizeWeight, ClosedForms) {
  // Per channel int8: row absmax / 127; 0.5 / (1.27 / 127) = 50 exactly; ties to even at 2.5 steps.
  QuantConfig q;
  q.quant_algo = QuantAlgo::W8A16;
  const float w[4] = {1.27f, 0.5f, -0.025f, 0.0f};  // [1, 4]: scale 0.01: 127, 50, -2.5 -> -2, 0
  auto r = quantize_weight(linear_quant_scheme(q), w, 1, 1, 4);
  EXPECT_EQ(r.scale, std::vector<float>{1.27f / 127.0f});
  EXPECT_EQ(int8_t(r.data[0]), 127);
  EXPECT_EQ(int8_t(r.data[1]), 50);
  EXPECT_EQ(int8_t(r.data[3]), 0);
  // int4 per group of 2, packed low nibble first: groups [7, -3.5] (scale 1: 7, -4 ties to even) and [0, 0] (scale 1).
  q.quant_algo = QuantAlgo::W4A16;
  q.group_size = 2;
  const float v[4] = {7.0f, -3.5f, 0.0f, 0.0f};
  r = quantize_weight(linear_quant_scheme(q), v, 1, 1, 4);
  EXPECT_EQ(r.scale, (std::vector<float>{1.0f, 1.0f}));
  ASSERT_EQ(r.data.size(), 2u);
  EXPECT_EQ(r.data[0], pack_int4x2(7, -4));
  EXPECT_EQ(r.data[1], 0);
  // fp8 per tensor: absmax 896 -> scale 2; 34 / 2 = 17 -> 16 (0x58), 896 / 2 = 448 (0x7e).
  q = QuantConfig{};
  q.quant_algo = QuantAlgo::FP8;
  const float f[2] = {34.0f, -896.0f};
  r = quantize_weight(linear_quant_scheme(q), f, 1, 1, 2);
  EXPECT_EQ(r.scale, std::vector<float>{2.0f});
  EXPECT_EQ(r.data[0], 0x58);
  EXPECT_EQ(r.data[1], 0xfe);
}

}  // namespace
}  // namespace kiln::test
