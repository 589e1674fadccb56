#include "quantize/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "backend/cpu/cpu_gemm.h"
#include "build/engine_builder.h"
#include "convert/convert.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/progress.h"
#include "io/json_file.h"
#include "model/carried_files.h"
#include "model/weight_file.h"
#include "model/weights.h"
#include "quantize/calibrate.h"
#include "quantize/quant_weights.h"
#include "quantize/smooth.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace kiln {

namespace {

struct Format {
  const char* name;
  QuantAlgo algo;
  int64_t default_group;
  bool calibrated;  // needs activation statistics
};
constexpr Format kFormats[] = {
    {"fp8", QuantAlgo::FP8, 0, true},
    {"fp8_rowwise", QuantAlgo::FP8_PER_CHANNEL_PER_TOKEN, 0, false},
    {"int8_sq", QuantAlgo::W8A8_SQ_PER_CHANNEL_PER_TOKEN, 0, true},
    {"int8_wo", QuantAlgo::W8A16, 0, false},
    {"int4_wo", QuantAlgo::W4A16, 128, false},
    {"int4_awq", QuantAlgo::W4A16_AWQ, 128, true},
    {"none", QuantAlgo::None, 0, false},
};

const Format& find_format(const std::string& name) {
  std::string names;
  for (auto& f : kFormats) {
    if (name == f.name) return f;
    names += std::string(names.empty() ? "" : ", ") + f.name;
  }
  fail("--qformat {}: unknown format (expected one of {})", name, names);
}

KvCacheQuantAlgo kv_algo(const std::string& kv) {
  if (kv.empty()) return KvCacheQuantAlgo::None;
  if (kv == "fp8") return KvCacheQuantAlgo::FP8;
  if (kv == "int8") return KvCacheQuantAlgo::INT8;
  fail("--kv-cache-dtype {}: unknown (expected fp8 or int8)", kv);
}

const char* granularity_name(QuantGranularity g) {
  switch (g) {
    case QuantGranularity::None: return "none";
    case QuantGranularity::PerTensor: return "per_tensor";
    case QuantGranularity::PerChannel: return "per_channel";
    case QuantGranularity::PerGroup: return "per_group";
  }
  return "";
}

// A checkpoint's tensors in fp32, by name.
std::map<std::string, FloatTensor> read_float_tensors(const std::string& path, const ModelConfig& c) {
  const WeightFile f(path, c);
  std::map<std::string, FloatTensor> out;
  for (auto& spec : f.specs()) {
    const TensorView& v = f.get(spec.name);
    FloatTensor t{spec.shape, std::vector<float>(size_t(v.numel()))};
    convert_to_f32(v.dtype, v.data, t.v.data(), t.v.size());
    out.emplace(spec.name, std::move(t));
  }
  return out;
}

// out [T, N] = x [T, K] @ w [N, K]^T
std::vector<float> matmul(const std::vector<float>& x, int64_t T, const float* w, int64_t N, int64_t K) {
  std::vector<float> out(static_cast<size_t>(T * N));
  row_invariant_gemm(x.data(), T, w, N, K, out.data());
  return out;
}

// The dequantized values of an int4 weight (one matrix), as the cpu backend computes them.
std::vector<float> dequantize_int4(const QuantScheme& s, const QuantizedWeight& q, int64_t N, int64_t K) {
  std::vector<float> w(static_cast<size_t>(N * K));
  const int64_t groups = s.granularity == QuantGranularity::PerGroup ? K / s.group_size : 1;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const uint8_t b = q.data[size_t(n * K + k) / 2];
      const int v = k % 2 == 0 ? int4x2_lo(b) : int4x2_hi(b);
      w[size_t(n * K + k)] = float(v) * q.scale[size_t(n * groups + k / (K / groups))];
    }
  return w;
}

struct AwqResult {
  QuantizedWeight q;
  std::vector<float> pre_quant_scale;
  double alpha = 0, error = 0, error_plain = 0;
};

// awq-lite over the kept input rows: the alpha whose scales give the smallest output error.
AwqResult awq_search(const QuantScheme& s, const float* w, int64_t N, int64_t K, const LinearStats& st) {
  const int64_t S = int64_t(st.samples.size()) / K;
  if (S == 0) fail("AWQ: no calibration rows for a layer of {} inputs", K);
  const std::vector<float> ref = matmul(st.samples, S, w, N, K);
  std::vector<float> mean(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) mean[size_t(k)] = float(st.abs_sum[size_t(k)] / double(st.rows));
  AwqResult best;
  best.error = INFINITY;
  constexpr int kGrid = 20;
  for (int g = 0; g < kGrid; ++g) {
    const double alpha = double(g) / kGrid;
    std::vector<float> sc(static_cast<size_t>(K));
    float mx = 0, mn = INFINITY;
    for (int64_t k = 0; k < K; ++k) {
      sc[size_t(k)] = float(std::pow(std::max(double(mean[size_t(k)]), 1e-4), alpha));
      mx = std::max(mx, sc[size_t(k)]);
      mn = std::min(mn, sc[size_t(k)]);
    }
    const float norm = std::sqrt(mx * mn);
    std::vector<float> ws(static_cast<size_t>(N * K)), pqs(static_cast<size_t>(K)), xs(st.samples.size());
    for (int64_t k = 0; k < K; ++k) {
      sc[size_t(k)] = std::max(sc[size_t(k)] / norm, 1e-4f);
      pqs[size_t(k)] = 1.0f / sc[size_t(k)];
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) ws[size_t(n * K + k)] = w[n * K + k] * sc[size_t(k)];
    for (int64_t r = 0; r < S; ++r)
      for (int64_t k = 0; k < K; ++k) xs[size_t(r * K + k)] = st.samples[size_t(r * K + k)] * pqs[size_t(k)];
    QuantizedWeight q = quantize_weight(s, ws.data(), 1, N, K);
    const std::vector<float> got = matmul(xs, S, dequantize_int4(s, q, N, K).data(), N, K);
    double err = 0;
    for (size_t i = 0; i < got.size(); ++i) err += double(got[i] - ref[i]) * double(got[i] - ref[i]);
    if (g == 0) best.error_plain = err;
    if (err < best.error) {
      best.error = err;
      best.alpha = alpha;
      best.q = std::move(q);
      best.pre_quant_scale = std::move(pqs);
    }
  }
  return best;
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A calibrated scale: amax / qmax, 1 when nothing was seen.
float calib_scale(float amax, float qmax) { return amax > 0 ? amax / qmax : 1.0f; }

}  // namespace

std::string qformat_algo(const std::string& qformat) {
  return std::string(quant_algo_name(find_format(qformat).algo));
}

bool needs_calibration(const std::string& qformat, const std::string& kv) {
  return find_format(qformat).calibrated || kv_algo(kv) != KvCacheQuantAlgo::None;
}

void quantize_checkpoint(const QuantizeOptions& o) {
  const Format& f = find_format(o.qformat);
  QuantConfig q;
  q.quant_algo = f.algo;
  q.kv_cache_quant_algo = kv_algo(o.kv_cache_dtype);
  if (!q.any()) fail("--qformat none without --kv-cache-dtype: nothing to quantize (use kiln convert)");
  if (o.group_size < 0) fail("--group-size {}: must be positive", o.group_size);
  q.group_size = o.group_size > 0 ? o.group_size : f.default_group;
  if (o.group_size > 0 && f.algo != QuantAlgo::W8A16 && f.default_group == 0)
    fail("--group-size {}: --qformat {} does not quantize per group", o.group_size, o.qformat);
  if (!(o.smoothquant_alpha >= 0.0 && o.smoothquant_alpha <= 1.0))
    fail("--smoothquant-alpha {}: must be in [0, 1]", o.smoothquant_alpha);
  if (!o.quantize_lm_head) q.exclude_modules.push_back("lm_head");
  for (auto& e : o.exclude) q.exclude_modules.push_back(e);
  const bool calibrated = f.calibrated || q.kv_cache_quant_algo != KvCacheQuantAlgo::None;
  if (calibrated && o.calib.empty()) fail("--qformat {}{}: needs calibration data (--calib-dataset)", o.qformat,
                                          o.kv_cache_dtype.empty() ? "" : " --kv-cache-dtype " + o.kv_cache_dtype);

  StagingDir out(o.output_dir);  // fails now when the output exists
  // Scratch beside the output, never committed: the float checkpoint and its calibration engine.
  StagingDir work(o.output_dir + ".kiln-quantize-work");
  const std::string ckpt = (work.path() / "float").string(), engine_dir = (work.path() / "engine").string();
  ConvertOptions co;
  co.model_dir = o.model_dir;
  co.output_dir = ckpt;
  co.progress = o.progress;
  co.rope_freq_checkpoint_dtype = o.rope_freq_checkpoint_dtype;
  convert_checkpoint(co);
  const ModelConfig base = read_checkpoint_config(ckpt);
  if (base.quant.any())
    fail("--model {}: already quantized ({} in its quantization_config); convert it with kiln convert", o.model_dir,
         quant_algo_name(base.quant.quant_algo));
  ModelConfig cq = base;
  cq.quant = q;
  try {
    q.validate("--qformat " + o.qformat);
    check_quantization(cq);
  } catch (const Error& e) {
    fail("--qformat {}{}: {}", o.qformat, q.group_size > 0 ? fmt::format(" --group-size {}", q.group_size) : "",
         e.what());
  }
  if (o.quantize_lm_head && base.tie_embeddings)
    fail("--quantize-lm-head: {} ties its lm_head to the embeddings, which stay in float", o.model_dir);
  if (f.calibrated && base.num_experts > 0)
    fail("--qformat {} calibrates every linear layer's input, which kiln does not observe for MoE experts yet ({} "
         "has {} experts); use fp8_rowwise, int8_wo or int4_wo", o.qformat, o.model_dir, base.num_experts);

  std::map<std::string, FloatTensor> w = read_float_tensors((fs::path(ckpt) / rank_file_name(0)).string(), base);
  CalibStats st;
  if (calibrated) {
    int64_t longest = 0;
    for (auto& s : o.calib) longest = std::max<int64_t>(longest, int64_t(s.size()));
    BuildOptions bo;
    bo.checkpoint_dir = ckpt;
    bo.output_dir = engine_dir;
    bo.limits.max_batch_size = 1;
    bo.limits.max_seq_len = bo.limits.max_input_len = bo.limits.max_num_tokens = longest;
    build_engine(bo);
    auto engine = Engine::load(engine_dir);
    CalibOptions opt;
    opt.rows_kept = o.calib_rows_kept;
    opt.progress = o.progress;
    st = calibrate(*engine, o.calib, opt);
  }
  json layers = json::object();
  if (f.algo == QuantAlgo::W8A8_SQ_PER_CHANNEL_PER_TOKEN) smooth_checkpoint(w, base, st, o.smoothquant_alpha);

  const QuantScheme scheme = linear_quant_scheme(q);
  const auto linears = linear_layers(cq);
  std::map<std::string, std::vector<uint8_t>> quantized;  // tensor name -> bytes
  std::optional<ProgressBar> bar;
  if (o.progress) bar.emplace("quantizing", int64_t(linears.size()));
  int64_t done = 0;
  for (const LinearSpec& l : linears) {
    if (bar) bar->update(done++);
    if (!l.scheme.quantized()) continue;
    const int64_t lead = l.lead.empty() ? 1 : l.lead[0];
    const float* src = w.at(l.module + ".weight").v.data();
    QuantizedWeight qw;
    if (f.algo == QuantAlgo::W4A16_AWQ) {
      AwqResult a = awq_search(scheme, src, l.N, l.K, st.linears.at(l.module));
      qw = std::move(a.q);
      quantized[l.module + ".pre_quant_scale"] = f32_bytes(a.pre_quant_scale);
      layers[l.module] = {{"awq_alpha", a.alpha}, {"error_ratio", a.error_plain > 0 ? a.error / a.error_plain : 1.0}};
    } else {
      qw = quantize_weight(scheme, src, lead, l.N, l.K);
    }
    quantized[l.module + ".weight"] = std::move(qw.data);
    quantized[l.module + ".weight_scale"] = f32_bytes(qw.scale);
    if (scheme.input_scale) {
      const float s = calib_scale(st.linears.at(l.module).tensor_amax(), 448.0f);
      quantized[l.module + ".input_scale"] = f32_bytes(std::vector<float>(size_t(lead), s));
    }
  }
  if (bar) bar->finish();
  json kv = json::array();
  if (q.kv_cache_quant_algo != KvCacheQuantAlgo::None) {
    const float qmax = q.kv_cache_quant_algo == KvCacheQuantAlgo::FP8 ? 448.0f : 127.0f;
    for (int64_t l = 0; l < base.num_layers; ++l) {
      const auto a = st.kv_amax[size_t(l)];
      const std::vector<float> s = {calib_scale(a[0], qmax), calib_scale(a[1], qmax)};
      quantized[layer_name(l, "attention.kv_cache_scale")] = f32_bytes(s);
      kv.push_back({{"k_amax", a[0]}, {"v_amax", a[1]}});
    }
  }

  WeightFileWriter wr(cq, "kiln-checkpoint");
  for (const WeightSpec& spec : expected_weights(cq)) {
    if (spec.quant) {
      wr.add(spec.name, spec.dtype, std::move(quantized.at(spec.name)));
    } else {
      const FloatTensor& t = w.at(spec.name);
      std::vector<uint8_t> b(t.v.size() * dtype_size(base.dtype));
      convert_from_f32(t.v.data(), base.dtype, b.data(), t.v.size());
      wr.add(spec.name, base.dtype, std::move(b));
    }
  }
  wr.write(out.file(rank_file_name(0)));
  write_checkpoint_config(out.file("config.json"), cq);
  json cfg = read_json_file(out.file("config.json"));
  json summary = {{"qformat", o.qformat},
                  {"quant_algo", quant_algo_name(q.quant_algo)},
                  {"kv_cache_quant_algo", kv_cache_quant_algo_name(q.kv_cache_quant_algo)},
                  {"weight_granularity", granularity_name(scheme.granularity)},
                  {"group_size", q.group_size > 0 ? json(q.group_size) : json(nullptr)},
                  {"exclude_modules", q.exclude_modules}};
  if (f.algo == QuantAlgo::W8A8_SQ_PER_CHANNEL_PER_TOKEN) summary["smoothquant_alpha"] = o.smoothquant_alpha;
  if (f.algo == QuantAlgo::W4A16_AWQ) summary["awq"] = {{"search", "awq_lite"}, {"grid", 20}, {"layers", layers}};
  if (calibrated)
    summary["calibration"] = {{"dataset", o.calib_source},
                              {"sequences", st.sequences},
                              {"tokens", st.tokens},
                              {"max_seq_length", int64_t(o.calib.empty() ? 0 : o.calib[0].size())}};
  if (!kv.empty()) summary["kv_cache_amax"] = kv;
  cfg["quantization_summary"] = summary;
  write_json_file(out.file("config.json"), cfg);
  for (int i = 0; kCarriedFiles[i]; ++i) {
    const fs::path src = fs::path(ckpt) / kCarriedFiles[i];
    if (fs::exists(src)) fs::copy_file(src, out.path() / kCarriedFiles[i]);
  }
  out.commit();
}

}  // namespace kiln
