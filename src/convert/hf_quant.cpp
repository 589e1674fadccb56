#include "convert/hf_quant.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace kiln {

HfQuant hf_quant_from_config(const nlohmann::json& qc, const std::string& src) {
  if (!qc.is_object() || !qc.contains("quant_method") || !qc["quant_method"].is_string())
    fail("{}: quantization_config without a quant_method", src);
  const std::string m = qc["quant_method"].get<std::string>();
  HfQuant q;
  auto num = [&](const char* f, int64_t dflt) {
    if (!qc.contains(f) || qc[f].is_null()) return dflt;
    if (!qc[f].is_number_integer()) fail("{}: quantization_config.{} {}: expected an integer", src, f, qc[f].dump());
    return qc[f].get<int64_t>();
  };
  if (m == "gptq") {
    q.method = HfQuantMethod::Gptq;
    q.name = "GPTQ";
    const std::string fmt_name = qc.value("checkpoint_format", std::string("gptq"));
    if (fmt_name != "gptq" && fmt_name != "gptq_v2")
      fail("{}: quantization_config.checkpoint_format '{}': kiln reads gptq and gptq_v2", src, fmt_name);
    q.zeros_minus_one = fmt_name == "gptq";
  } else if (m == "awq") {
    q.method = HfQuantMethod::AwqGemm;
    q.name = "AutoAWQ GEMM";
    const std::string v = qc.value("version", std::string("gemm"));
    if (v != "gemm" && v != "GEMM")
      fail("{}: quantization_config.version '{}': kiln reads AutoAWQ's GEMM packing only", src, v);
    if (qc.contains("zero_point") && qc["zero_point"].is_boolean() && !qc["zero_point"].get<bool>())
      fail("{}: quantization_config.zero_point false: kiln reads AutoAWQ checkpoints with zero points", src);
  } else {
    fail("{}: quantization_config.quant_method '{}': kiln imports gptq, awq (GEMM), compressed-tensors (FP8) and "
         "modelopt (FP8) checkpoints", src, m);
  }
  const int64_t bits = num(m == "awq" ? "w_bit" : "bits", num("bits", 4));
  if (bits != 4) fail("{}: quantization_config: {}-bit weights (kiln imports 4-bit ones)", src, bits);
  q.group_size = num(m == "awq" ? "q_group_size" : "group_size", num("group_size", 128));
  if (q.group_size == 0 || q.group_size < -1) fail("{}: quantization_config group size {}", src, q.group_size);
  return q;
}

namespace {

const TensorView& tensor(const SafetensorsSet& s, const std::string& dir, const std::string& name, DType dt,
                         const std::vector<int64_t>& shape, const std::string& why) {
  if (!s.has(name)) fail("{}: missing tensor '{}' ({})", dir, name, why);
  const TensorView& t = s.get(name);
  TensorView want;
  want.shape = shape;
  if (t.shape != shape)
    fail("{}: tensor '{}' has shape {}, expected {} ({})", dir, name, t.shape_str(), want.shape_str(), why);
  if (t.dtype != dt)
    fail("{}: tensor '{}' has dtype {}, expected {} ({})", dir, name, dtype_st_name(t.dtype), dtype_st_name(dt), why);
  return t;
}

uint32_t word(const TensorView& t, int64_t i) {
  uint32_t w;
  std::memcpy(&w, static_cast<const uint8_t*>(t.data) + i * 4, 4);
  return w;
}

}  // namespace

Int4Linear read_int4_linear(const SafetensorsSet& s, const std::string& dir, const std::string& p, const HfQuant& q,
                            int64_t N, int64_t K) {
  Int4Linear l;
  l.N = N;
  l.K = K;
  const int64_t G = q.group_size == -1 ? K : q.group_size;
  if (K % 8 != 0 || N % 8 != 0)
    fail("{}: {} layer '{}' of [{}, {}]: 4-bit packing needs multiples of 8", dir, q.name, p, N, K);
  if (K % G != 0) fail("{}: {} group size {} does not divide layer '{}''s {} inputs", dir, q.name, G, p, K);
  l.groups = K / G;
  const std::string why = fmt::format("{} layer of [{}, {}], group size {}", q.name, N, K, G);
  l.u.resize(size_t(N * K));
  l.z.resize(size_t(l.groups * N));
  l.scale.resize(size_t(l.groups * N));
  l.g_idx.resize(size_t(K));
  const TensorView& sc = tensor(s, dir, p + ".scales", DType::F16, {l.groups, N}, why);
  convert_to_f32(DType::F16, sc.data, l.scale.data(), l.scale.size());
  const bool awq = q.method == HfQuantMethod::AwqGemm;
  static constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  const TensorView& qz = tensor(s, dir, p + ".qzeros", DType::I32, {l.groups, N / 8}, why);
  for (int64_t g = 0; g < l.groups; ++g)
    for (int64_t c = 0; c < N / 8; ++c) {
      const uint32_t w = word(qz, g * (N / 8) + c);
      for (int j = 0; j < 8; ++j) {
        int z = int((w >> (4 * j)) & 0xf);
        if (!awq && q.zeros_minus_one) z += 1;
        l.z[size_t(g * N + c * 8 + (awq ? kAwqOrder[j] : j))] = uint8_t(z);
      }
    }
  if (awq) {
    const TensorView& qw = tensor(s, dir, p + ".qweight", DType::I32, {K, N / 8}, why);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < N / 8; ++c) {
        const uint32_t w = word(qw, k * (N / 8) + c);
        for (int j = 0; j < 8; ++j) l.u[size_t((c * 8 + kAwqOrder[j]) * K + k)] = uint8_t((w >> (4 * j)) & 0xf);
      }
    for (int64_t k = 0; k < K; ++k) l.g_idx[size_t(k)] = int32_t(k / G);
  } else {
    const TensorView& qw = tensor(s, dir, p + ".qweight", DType::I32, {K / 8, N}, why);
    for (int64_t r = 0; r < K / 8; ++r)
      for (int64_t n = 0; n < N; ++n) {
        const uint32_t w = word(qw, r * N + n);
        for (int j = 0; j < 8; ++j) l.u[size_t(n * K + r * 8 + j)] = uint8_t((w >> (4 * j)) & 0xf);
      }
    if (s.has(p + ".g_idx")) {
      const TensorView& gi = tensor(s, dir, p + ".g_idx", DType::I32, {K}, why);
      std::memcpy(l.g_idx.data(), gi.data, size_t(K) * 4);
      for (int64_t k = 0; k < K; ++k)
        if (l.g_idx[size_t(k)] < 0 || l.g_idx[size_t(k)] >= l.groups)
          fail("{}: tensor '{}.g_idx'[{}] = {} is not a group of the layer's {}", dir, p, k, l.g_idx[size_t(k)],
               l.groups);
    } else {
      for (int64_t k = 0; k < K; ++k) l.g_idx[size_t(k)] = int32_t(k / G);
    }
  }
  for (float v : l.scale)
    if (!std::isfinite(v)) fail("{}: tensor '{}.scales' holds {}", dir, p, v);
  return l;
}

int64_t int4_run_length(const Int4Linear& l) {
  for (int64_t run = l.K; run >= 1; --run) {
    if (l.K % run != 0) continue;
    bool ok = true;
    for (int64_t k = 0; ok && k < l.K; ++k) ok = l.g_idx[size_t(k)] == l.g_idx[size_t(k / run * run)];
    if (ok) return run;
  }
  return 1;
}

KilnInt4 to_kiln_int4(const std::vector<Int4Linear>& parts, int64_t run) {
  KilnInt4 o;
  const int64_t K = parts.at(0).K, R = K / run;
  for (const Int4Linear& l : parts) {
    for (int64_t n = 0; n < l.N; ++n) {
      for (int64_t k = 0; k < K; k += 2)
        o.data.push_back(pack_int4x2(int(l.u[size_t(n * K + k)]) - 8, int(l.u[size_t(n * K + k + 1)]) - 8));
      for (int64_t r = 0; r < R; ++r) {
        const int32_t g = l.g_idx[size_t(r * run)];
        o.scale.push_back(l.scale[size_t(g * l.N + n)]);
        o.zero.push_back(int8_t(int(l.z[size_t(g * l.N + n)]) - 8));
      }
    }
  }
  return o;
}

}  // namespace kiln
