// The cpu backend's quantized linear and KV cache (src/backend/cpu/quant_linear.h): closed-form cases that pin the
// rounding (int8 ties to even, fp8 e4m3 ties to even with saturation, per-token scales from the row's absmax, int4
// low nibble first, zero points, pre_quant_scale), and random cases against an independent double-precision
// fake-quantization written here (fp8 by search over all 256 codes, not through kiln's conversions).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace kiln {
namespace {

struct Case {
  QuantScheme s;
  std::vector<int64_t> wshape;
  std::vector<uint8_t> data;  // the stored bytes of the weight
  std::vector<float> scale, input_scale, pre_quant_scale;
  std::vector<int8_t> zero;
};

QuantScheme scheme(QuantAlgo a, int64_t group = 0) {
  QuantConfig q;
  q.quant_algo = a;
  q.group_size = group;
  return linear_quant_scheme(q);
}

// out [T, N] of the cpu backend's linear for x [T, K] and the case's weight.
std::vector<float> run(const Case& c, const std::vector<float>& x, int64_t T, int64_t K, int64_t N) {
  CpuBackend be(1);
  auto up = [&](DType dt, std::vector<int64_t> shape, const void* src) {
    Tensor t = be.alloc(dt, std::move(shape));
    std::memcpy(t.data, src, t.nbytes());
    return t;
  };
  LinearParams p;
  p.x = up(DType::F32, {T, K}, x.data());
  p.weight = up(c.s.weight_dtype, c.wshape, c.data.data());
  p.quant = c.s;
  p.weight_scale = up(DType::F32, c.s.scale_shape({}, N, K), c.scale.data());
  if (!c.zero.empty()) p.weight_zero = up(DType::I8, c.s.scale_shape({}, N, K), c.zero.data());
  if (!c.input_scale.empty()) p.input_scale = up(DType::F32, {1}, c.input_scale.data());
  if (!c.pre_quant_scale.empty()) p.pre_quant_scale = up(DType::F32, {K}, c.pre_quant_scale.data());
  p.out = be.alloc(DType::F32, {T, N});
  be.linear(p);
  return std::vector<float>(p.out.ptr<float>(), p.out.ptr<float>() + T * N);
}

// e4m3 code -> value, from the format's definition (bias 7, subnormals, 0x7f/0xff NaN).
double e4m3_value(int code) {
  const int sign = code >> 7, e = (code >> 3) & 0xf, m = code & 7;
  const double v = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return sign ? -v : v;
}
// Nearest e4m3 value by search, ties to the even code, saturating at +-448.
double e4m3_round(double v) {
  v = std::clamp(v, -448.0, 448.0);
  int best = 0;
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;
    const double d = std::fabs(e4m3_value(c) - v), bd = std::fabs(e4m3_value(best) - v);
    if (d < bd || (d == bd && (c & 1) == 0 && (best & 1) == 1)) best = c;
  }
  return e4m3_value(best);
}

TEST(CpuQuantLinear, Int8ActivationsRoundHalfToEvenPerToken) {
  // One row, absmax 63.5 -> scale 0.5: x / 0.5 = [2.5, 1.5, -2.5, 127] -> [2, 2, -2, 127].
  Case c{scheme(QuantAlgo::W8A8_SQ_PER_CHANNEL_PER_TOKEN), {2, 4}, {}, {0.25f, 2.0f}, {}, {}, {}};
  const int8_t w[8] = {1, 1, 1, 0, 3, -5, 7, 1};  // [N=2, K=4]
  c.data.assign(reinterpret_cast<const uint8_t*>(w), reinterpret_cast<const uint8_t*>(w) + 8);
  const auto out = run(c, {1.25f, 0.75f, -1.25f, 63.5f}, 1, 4, 2);
  // acc0 = 2 + 2 - 2 = 2; acc1 = 6 - 10 - 14 + 127 = 109; out = acc * 0.5 * w_n.
  EXPECT_EQ(out[0], 2 * 0.5f * 0.25f);
  EXPECT_EQ(out[1], 109 * 0.5f * 2.0f);
}

TEST(CpuQuantLinear, Fp8ActivationsRoundToEvenAndSaturate) {
  // Per tensor, input_scale 1: 17 -> 16 (tie, even mantissa), 19 -> 20 (tie, even), 500 -> 448, 0.3 -> 0.3125.
  Case c{scheme(QuantAlgo::FP8), {1, 4}, {0x38, 0x38, 0x38, 0x38}, {0.5f}, {1.0f}, {}, {}};  // 0x38 = 1.0
  auto out = run(c, {17.0f, 0.0f, 0.0f, 0.0f}, 1, 4, 1);
  EXPECT_EQ(out[0], 16.0f * 0.5f);
  out = run(c, {19.0f, 500.0f, -500.0f, 0.3f}, 1, 4, 1);
  EXPECT_EQ(out[0], (20.0f + 448.0f - 448.0f + 0.3125f) * 0.5f);
  // Per token: absmax 896 -> scale 2: 34 / 2 = 17 -> 16, so 34 contributes 32.
  Case r{scheme(QuantAlgo::FP8_PER_CHANNEL_PER_TOKEN), {1, 4}, {0x38, 0x38, 0x38, 0x00}, {3.0f}, {}, {}, {}};
  out = run(r, {34.0f, 896.0f, 1.0f, 5.0f}, 1, 4, 1);
  EXPECT_EQ(out[0], (16.0f + 448.0f + 0.5f) * 2.0f * 3.0f);
}

TEST(CpuQuantLinear, Int4PackingGroupsZerosAndPreQuantScale) {
  // W4A16 per group of 2, K = 4: row 0 = [1, -2 | 7, -8], row 1 = [0, 3 | -1, 2] (low nibble first).
  const uint8_t packed[4] = {pack_int4x2(1, -2), pack_int4x2(7, -8), pack_int4x2(0, 3), pack_int4x2(-1, 2)};
  Case c{scheme(QuantAlgo::W4A16, 2), {2, 2}, {packed, packed + 4}, {0.5f, 2.0f, 1.0f, 0.25f}, {}, {}, {}};
  const std::vector<float> x = {1.0f, 2.0f, 3.0f, 4.0f};
  auto out = run(c, x, 1, 4, 2);
  EXPECT_EQ(out[0], (1 - 4) * 0.5f + (21 - 32) * 2.0f);
  EXPECT_EQ(out[1], (0 + 6) * 1.0f + (-3 + 8) * 0.25f);
  // GPTQ: the same with zero points [1, -1 | 0, 2]: W = (q - z) * s.
  Case g = c;
  g.s = scheme(QuantAlgo::W4A16_GPTQ, 2);
  g.zero = {1, -1, 0, 2};
  out = run(g, x, 1, 4, 2);
  EXPECT_EQ(out[0], (0 * 1 + -3 * 2) * 0.5f + (8 * 3 + -7 * 4) * 2.0f);
  EXPECT_EQ(out[1], (0 + 6) * 1.0f + (-3 * 3 + 0 * 4) * 0.25f);
  // AWQ: x * pre_quant_scale first.
  Case a = c;
  a.s = scheme(QuantAlgo::W4A16_AWQ, 2);
  a.pre_quant_scale = {2.0f, 1.0f, 0.5f, 0.25f};
  out = run(a, x, 1, 4, 2);
  EXPECT_EQ(out[0], (1 * 2 - 2 * 2) * 0.5f + (7 * 1.5f - 8 * 1) * 2.0f);
}

// Random weights and activations of every scheme against a double-precision fake-quantization.
TEST(CpuQuantLinear, MatchesAnIndependentFakeQuantization) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t T = 5, K = 1280, N = 24;  // K > 1024: the int8 sums span several exact chunks
  std::vector<float> x(size_t(T * K));
  for (auto& v : x) v = nd(rng);
  x[3] = 40.0f;  // an outlier channel
  for (QuantAlgo algo : {QuantAlgo::FP8, QuantAlgo::FP8_PER_CHANNEL_PER_TOKEN, QuantAlgo::W8A8_SQ_PER_CHANNEL_PER_TOKEN,
                         QuantAlgo::W8A16, QuantAlgo::W4A16, QuantAlgo::W4A16_AWQ}) {
    const bool grouped = algo == QuantAlgo::W4A16 || algo == QuantAlgo::W4A16_AWQ;
    Case c{scheme(algo, grouped ? 128 : 0), {}, {}, {}, {}, {}, {}};
    const QuantScheme& s = c.s;
    c.wshape = s.data_shape({}, N, K);
    int64_t nscale = 1;
    for (auto d : s.scale_shape({}, N, K)) nscale *= d;
    for (int64_t i = 0; i < nscale; ++i) c.scale.push_back(0.01f + 0.001f * float(i % 17));
    std::vector<double> wq(static_cast<size_t>(N * K));  // the stored values
    std::uniform_int_distribution<int> i8(-127, 127), i4(-8, 7), f8(0, 0x7e);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        if (s.weight_dtype == DType::I8) wq[n * K + k] = i8(rng);
        if (s.weight_dtype == DType::I4X2) wq[n * K + k] = i4(rng);
        if (s.weight_dtype == DType::F8_E4M3) {
          const int code = f8(rng) | (rng() & 1 ? 0x80 : 0);
          wq[n * K + k] = e4m3_value(code);
          c.data.push_back(uint8_t(code));
        }
      }
    if (s.weight_dtype == DType::I8)
      for (double v : wq) c.data.push_back(uint8_t(int8_t(v)));
    if (s.weight_dtype == DType::I4X2)
      for (size_t i = 0; i < wq.size(); i += 2) c.data.push_back(pack_int4x2(int(wq[i]), int(wq[i + 1])));
    if (s.input_scale) c.input_scale = {0.05f};
    if (s.pre_quant_scale)
      for (int64_t k = 0; k < K; ++k) c.pre_quant_scale.push_back(0.5f + float(k % 5) * 0.25f);
    const auto out = run(c, x, T, K, N);
    for (int64_t t = 0; t < T; ++t) {
      // Activations as the format sees them, in double.
      std::vector<double> xa(static_cast<size_t>(K));
      double a = 1.0;
      double amax = 0;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, double(std::fabs(x[t * K + k])));
      if (s.activations == ActQuant::PerTensorStatic) a = c.input_scale[0];
      if (s.activations == ActQuant::PerTokenDynamic) a = double(float(amax) / (s.act_dtype == DType::I8 ? 127.0f : 448.0f));
      for (int64_t k = 0; k < K; ++k) {
        double v = x[t * K + k];
        if (!c.pre_quant_scale.empty()) v = double(float(v) * c.pre_quant_scale[k]);
        if (s.activations != ActQuant::None) {
          const double q = double(float(v) / float(a));
          v = s.act_dtype == DType::I8 ? std::clamp(std::nearbyint(q), -128.0, 127.0) : e4m3_round(q);
        }
        xa[k] = v;
      }
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) {
          double w = wq[n * K + k];
          const double sc = s.granularity == QuantGranularity::PerTensor  ? c.scale[0]
                            : s.granularity == QuantGranularity::PerChannel ? c.scale[n]
                                                                            : c.scale[n * (K / 128) + k / 128];
          acc += xa[k] * (s.activations == ActQuant::None ? double(float(w * sc)) : w);
        }
        const double sc = s.granularity == QuantGranularity::PerTensor ? c.scale[0] : c.scale[n];
        const double want = s.activations == ActQuant::None ? acc : acc * a * sc;
        const double got = out[t * N + n];
        // fp32 sums of K = 1280 products: a few ulps of the sum of magnitudes.
        ASSERT_NEAR(got, want, 1e-5 * (std::fabs(want) + 1.0)) << quant_algo_name(algo) << " t " << t << " n " << n;
      }
    }
  }
}

// A quantized KV cache: rope_kv writes q = quantize(x / scale), attention reads q * scale.
TEST(CpuQuantKvCache, WritesAndReadsQuantizedValues) {
  for (DType dt : {DType::F8_E4M3, DType::I8}) {
    CpuBackend be(1);
    const int64_t nh = 1, nkv = 1, hd = 4, T = 1;
    KvCacheDesc c;
    c.num_layers = 1;
    c.num_blocks = 1;
    c.num_kv_heads = nkv;
    c.tokens_per_block = 4;
    c.head_dim = hd;
    c.dtype = dt;
    c.pool = be.alloc(dt, {1, 1, 2, nkv, 4, hd});
    be.fill_zero(c.pool);
    c.scales = be.alloc(DType::F32, {1, 2});
    const float scales[2] = {0.5f, 0.25f};  // k, v
    be.upload(c.scales, scales, 8);
    StepMeta m;
    m.num_tokens = 1;
    m.num_seqs = 1;
    m.max_blocks_per_seq = 1;
    auto i32 = [&](std::vector<int32_t> v) {
      Tensor t = be.alloc(DType::I32, {int64_t(v.size())});
      std::memcpy(t.data, v.data(), v.size() * 4);
      return t;
    };
    m.positions = i32({0});
    m.token_seq = i32({0});
    m.seq_offsets = i32({0, 1});
    m.num_cached = i32({0});
    m.block_tables = i32({0});
    m.slot_mapping = i32({0});
    Tensor qkv = be.alloc(DType::F32, {T, (nh + 2 * nkv) * hd});
    // v / 0.25 = [4.5, -2.5, 1000, 0.3]: int8 -> [4, -2, 127, 0]; fp8 -> [4.5, -2.5, 448, 0.3125] (exact / saturated).
    const float row[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1.125f, -0.625f, 250.0f, 0.075f};
    std::memcpy(qkv.data, row, sizeof row);
    RopeKvParams r;
    r.qkv = qkv;
    r.apply_rope = false;
    r.num_heads = nh;
    r.num_kv_heads = nkv;
    r.head_dim = hd;
    r.meta = &m;
    r.cache = c;
    be.rope_kv(r);
    AttentionParams a;
    a.qkv = qkv;
    a.out = be.alloc(DType::F32, {T, nh * hd});
    a.num_heads = nh;
    a.num_kv_heads = nkv;
    a.head_dim = hd;
    a.meta = &m;
    a.cache = c;
    be.attention(a);  // one key: the output is the dequantized value
    const float* o = a.out.ptr<float>();
    if (dt == DType::I8) {
      EXPECT_EQ(std::vector<float>(o, o + 4), (std::vector<float>{1.0f, -0.5f, 127 * 0.25f, 0.0f}));
      EXPECT_EQ(reinterpret_cast<const int8_t*>(c.pool.data)[0], 2) << "k: 1 / 0.5";
    } else {
      EXPECT_EQ(std::vector<float>(o, o + 4), (std::vector<float>{1.125f, -0.625f, 448 * 0.25f, 0.3125f * 0.25f}));
    }
  }
}

TEST(CpuQuantLinear, RefusesMisShapedParameters) {
  CpuBackend be(1);
  LinearParams p;
  p.x = be.alloc(DType::F32, {1, 4});
  p.weight = be.alloc(DType::I4X2, {2, 2});
  p.out = be.alloc(DType::F32, {1, 2});
  p.quant = scheme(QuantAlgo::W4A16, 2);
  p.weight_scale = be.alloc(DType::F32, {2});
  EXPECT_THROW(be.linear(p), Error);
  try {
    be.linear(p);
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "linear: weight_scale must be float32 [2, 2], not [2]");
  }
}

}  // namespace
}  // namespace kiln
