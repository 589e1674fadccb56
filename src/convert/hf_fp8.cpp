#include "convert/hf_fp8.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/quant_math.h"

namespace kiln {

namespace {

void check_fp8_args(const nlohmann::json& a, const std::string& src, const std::string& field) {
  if (!a.is_object()) fail("{}: quantization_config {}: expected an object", src, field);
  if (a.value("num_bits", 8) != 8 || a.value("type", std::string("float")) != "float")
    fail("{}: quantization_config {}: {}-bit {} values (kiln imports 8-bit float ones)", src, field,
         a.value("num_bits", 8), a.value("type", std::string("float")));
}

std::vector<float> floats(const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  convert_to_f32(t.dtype, t.data, v.data(), v.size());
  return v;
}

}  // namespace

bool hf_fp8_from_config(const nlohmann::json& qc, const std::string& src, HfFp8* out) {
  if (!qc.is_object() || !qc.contains("quant_method") || !qc["quant_method"].is_string()) return false;
  const std::string m = qc["quant_method"].get<std::string>();
  HfFp8 f;
  if (m == "compressed-tensors") {
    f.name = "compressed-tensors FP8";
    const std::string format = qc.value("format", std::string());
    if (format != "float-quantized" && format != "naive-quantized")
      fail("{}: quantization_config.format '{}': kiln imports compressed-tensors float-quantized (FP8) checkpoints",
           src, format);
    if (!qc.contains("config_groups") || !qc["config_groups"].is_object() || qc["config_groups"].size() != 1)
      fail("{}: quantization_config.config_groups: kiln imports one quantization group", src);
    const auto& g = qc["config_groups"].begin().value();
    if (!g.contains("weights")) fail("{}: quantization_config.config_groups: no weights scheme", src);
    check_fp8_args(g["weights"], src, "weights");
    const std::string ws = g["weights"].value("strategy", std::string("tensor"));
    if (ws != "tensor" && ws != "channel")
      fail("{}: quantization_config weights.strategy '{}': kiln imports tensor and channel scales", src, ws);
    if (g.contains("input_activations") && !g["input_activations"].is_null()) {
      check_fp8_args(g["input_activations"], src, "input_activations");
      f.dynamic_activations = g["input_activations"].value("dynamic", false);
    } else {
      fail("{}: quantization_config: weight-only FP8 (no input_activations) has no kiln scheme", src);
    }
    f.kv_cache = qc.contains("kv_cache_scheme") && !qc["kv_cache_scheme"].is_null();
    if (f.kv_cache) check_fp8_args(qc["kv_cache_scheme"], src, "kv_cache_scheme");
  } else if (m == "modelopt") {
    f.name = "ModelOpt FP8";
    if (qc.value("quant_algo", std::string()) != "FP8")
      fail("{}: quantization_config.quant_algo '{}': kiln imports ModelOpt FP8 checkpoints", src,
           qc.value("quant_algo", std::string()));
    const std::string kv = qc.contains("kv_cache_quant_algo") && qc["kv_cache_quant_algo"].is_string()
                               ? qc["kv_cache_quant_algo"].get<std::string>()
                               : "";
    if (!kv.empty() && kv != "FP8") fail("{}: quantization_config.kv_cache_quant_algo '{}': kiln imports FP8", src, kv);
    f.kv_cache = kv == "FP8";
  } else {
    return false;
  }
  *out = f;
  return true;
}

float read_scalar(const SafetensorsSet& src, const std::string& dir, const std::string& name) {
  if (!src.has(name)) fail("{}: missing tensor '{}'", dir, name);
  const TensorView& t = src.get(name);
  if (t.numel() != 1 || t.shape.size() > 1 || !is_float(t.dtype))
    fail("{}: tensor '{}' has shape {} and dtype {}, expected one float ([] or [1])", dir, name, t.shape_str(),
         dtype_st_name(t.dtype));
  const float v = floats(t)[0];
  if (!(v > 0) || !std::isfinite(v)) fail("{}: tensor '{}' = {}: a scale must be positive and finite", dir, name, v);
  return v;
}

Fp8Linear read_fp8_linear(const SafetensorsSet& src, const std::string& dir, const std::string& p, const HfFp8& f,
                          int64_t N, int64_t K) {
  Fp8Linear l;
  l.N = N;
  l.K = K;
  const std::string wn = p + ".weight", sn = p + ".weight_scale";
  if (!src.has(wn)) fail("{}: missing tensor '{}'", dir, wn);
  const TensorView& w = src.get(wn);
  if (w.dtype != DType::F8_E4M3 || w.shape != std::vector<int64_t>{N, K})
    fail("{}: tensor '{}' is {} {}, expected F8_E4M3 [{}, {}] ({})", dir, wn, dtype_st_name(w.dtype), w.shape_str(),
         N, K, f.name);
  l.q = static_cast<const uint8_t*>(w.data);
  if (!src.has(sn)) fail("{}: missing tensor '{}' ({} layer of [{}, {}])", dir, sn, f.name, N, K);
  const TensorView& s = src.get(sn);
  const bool tensor = s.numel() == 1 && s.shape.size() <= 1;
  const bool channel = s.numel() == N && (s.shape == std::vector<int64_t>{N, 1} || s.shape == std::vector<int64_t>{N});
  if (!is_float(s.dtype) || (!tensor && !channel))
    fail("{}: tensor '{}' has shape {}, expected [] or [1] (per tensor) or [{}, 1] (per channel) ({})", dir, sn,
         s.shape_str(), N, f.name);
  l.scale = floats(s);
  for (float v : l.scale)
    if (!(v > 0) || !std::isfinite(v)) fail("{}: tensor '{}' holds {}: scales must be positive and finite", dir, sn, v);
  if (!f.dynamic_activations) l.input_scale = read_scalar(src, dir, p + ".input_scale");
  return l;
}

KilnFp8 to_kiln_fp8(const std::vector<Fp8Linear>& parts, bool per_channel) {
  KilnFp8 o;
  float smax = 0;
  for (auto& l : parts) {
    for (float v : l.scale) smax = std::max(smax, v);
    o.input_scale = std::max(o.input_scale, l.input_scale);
  }
  if (!per_channel) o.scale = {smax};
  for (auto& l : parts)
    for (int64_t n = 0; n < l.N; ++n) {
      const float s = l.scale.size() == 1 ? l.scale[0] : l.scale[size_t(n)];
      if (per_channel) o.scale.push_back(s);
      for (int64_t k = 0; k < l.K; ++k) {
        const uint8_t c = l.q[n * l.K + k];
        o.data.push_back(per_channel || s == smax ? c : quantize_fp8(f8e4m3_to_f32(c) * s / smax));
      }
    }
  return o;
}

}  // namespace kiln
