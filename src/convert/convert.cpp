#include "convert/convert.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "convert/hf_map.h"
#include "convert/hf_fp8.h"
#include "convert/hf_quant.h"
#include "core/error.h"
#include "core/finite.h"
#include "core/fs_util.h"
#include "core/progress.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/carried_files.h"
#include "model/config.h"
#include "model/weight_file.h"

namespace fs = std::filesystem;

namespace kiln {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

// Assembles one kiln tensor in fp32: [sum of parts' rows, cols], then converts it into dst (out_dtype).
void assemble(const Recipe& r, const SafetensorsSet& src, const std::string& dir, DType out_dtype, uint8_t* dst) {
  std::vector<float> buf;
  for (auto& part : r.parts) {
    if (!src.has(part.name)) fail("{}: missing tensor '{}' (needed for {})", dir, part.name, r.name);
    const TensorView& t = src.get(part.name);
    if (t.shape != part.shape)
      fail("{}: tensor '{}' has shape {} but the config implies {}", dir, part.name, t.shape_str(), shape_str(part.shape));
    if (!is_float(t.dtype)) fail("{}: tensor '{}' has dtype {}, expected a float type", dir, part.name, dtype_st_name(t.dtype));
    size_t n = size_t(t.numel()), off = buf.size();
    std::vector<float> tmp(n);
    convert_to_f32(t.dtype, t.data, tmp.data(), n);
    if (const int64_t bad = first_non_finite(tmp.data(), n, out_dtype); bad >= 0)
      fail("{}: tensor '{}' holds {} at {} (flat index {}){}; refusing to convert a checkpoint with non-finite "
           "weights", dir, part.name, tmp[size_t(bad)], index_str(bad, t.shape), bad,
           std::isfinite(tmp[size_t(bad)]) ? fmt::format(", which overflows {}", dtype_name(out_dtype)) : "");
    buf.resize(off + n);
    if (part.transpose) {
      const int64_t rows = part.shape[0], cols = part.shape[1];  // stored [rows, cols] -> [cols, rows]
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) buf[off + size_t(j * rows + i)] = tmp[size_t(i * cols + j)];
    } else {
      std::copy(tmp.begin(), tmp.end(), buf.begin() + off);
    }
  }
  convert_from_f32(buf.data(), out_dtype, dst, buf.size());
}

// The quantized tensors of a pre-quantized checkpoint, in kiln's layout, by kiln name.
struct PrequantTensors {
  std::map<std::string, std::pair<DType, std::vector<uint8_t>>> tensors;
  void add_f32(const std::string& name, const std::vector<float>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    tensors[name] = {DType::F32, std::move(b)};
  }
};

// Each linear layer of the float recipe with the HF prefixes of its parts; those the checkpoint keeps in float
// (`is_quantized` false for every part; usually lm_head) go to cfg.quant.exclude_modules.
std::vector<std::pair<LinearSpec, std::vector<HfPart>>> quantized_layers(
    const SafetensorsSet& src, const std::string& dir, const std::string& what, ModelConfig& cfg,
    const std::function<bool(const std::string&)>& is_quantized) {
  ModelConfig fcfg = cfg;
  fcfg.quant = QuantConfig{};
  std::map<std::string, std::vector<HfPart>> parts;
  for (auto& r : hf_recipes(fcfg)) parts[r.name] = r.parts;
  std::vector<std::pair<LinearSpec, std::vector<HfPart>>> out;
  for (const LinearSpec& l : linear_layers(fcfg)) {
    auto ps = parts.at(l.module + ".weight");
    int quantized = 0;
    for (auto& p : ps) {
      p.name = p.name.substr(0, p.name.size() - 7);  // the HF module prefix (without ".weight")
      quantized += is_quantized(p.name);
    }
    if (quantized == 0) {
      cfg.quant.exclude_modules.push_back(l.module);
      continue;
    }
    if (quantized != int(ps.size()))
      fail("{}: {} checkpoint: only some of the layers fused into {} are quantized", dir, what, l.module);
    for (auto& p : ps)
      if (p.transpose) fail("{}: {} checkpoints of {} are not supported", dir, what, cfg.architecture);
    out.push_back({l, std::move(ps)});
  }
  if (out.empty()) fail("{}: {} checkpoint without any quantized layer", dir, what);
  return out;
}

PrequantTensors read_int4(const SafetensorsSet& src, const std::string& dir, const HfQuant& hq, ModelConfig& cfg) {
  auto layers = quantized_layers(src, dir, hq.name, cfg, [&](const std::string& p) { return src.has(p + ".qweight"); });
  std::map<std::string, std::vector<Int4Linear>> decoded;
  int64_t run = 0;
  for (auto& [l, ps] : layers)
    for (auto& p : ps) {
      Int4Linear il = read_int4_linear(src, dir, p.name, hq, p.shape[0], p.shape[1]);
      const int64_t r = int4_run_length(il);
      run = run == 0 ? r : std::gcd(run, r);
      decoded[l.module].push_back(std::move(il));
    }
  cfg.quant.quant_algo = QuantAlgo::W4A16_GPTQ;
  cfg.quant.group_size = run;
  PrequantTensors out;
  for (auto& [m, ls] : decoded) {
    KilnInt4 k = to_kiln_int4(ls, run);
    out.tensors[m + ".weight"] = {DType::I4X2, std::move(k.data)};
    out.add_f32(m + ".weight_scale", k.scale);
    out.tensors[m + ".weight_zero"] = {DType::I8, std::vector<uint8_t>(k.zero.begin(), k.zero.end())};
  }
  return out;
}

PrequantTensors read_fp8(const SafetensorsSet& src, const std::string& dir, const HfFp8& f, ModelConfig& cfg) {
  auto layers = quantized_layers(src, dir, f.name, cfg, [&](const std::string& p) {
    return src.has(p + ".weight") && src.get(p + ".weight").dtype == DType::F8_E4M3;
  });
  std::map<std::string, std::vector<Fp8Linear>> decoded;
  bool per_channel = f.dynamic_activations;
  for (auto& [l, ps] : layers)
    for (auto& p : ps) {
      decoded[l.module].push_back(read_fp8_linear(src, dir, p.name, f, p.shape[0], p.shape[1]));
      if (decoded[l.module].back().scale.size() > 1) {
        if (!f.dynamic_activations)
          fail("{}: {} layer '{}' has per-channel weight scales with static activation scales, which kiln has no "
               "scheme for", dir, f.name, p.name);
        per_channel = true;
      }
    }
  cfg.quant.quant_algo = per_channel ? QuantAlgo::FP8_PER_CHANNEL_PER_TOKEN : QuantAlgo::FP8;
  PrequantTensors out;
  for (auto& [l, ps] : layers) {
    const auto& parts = decoded[l.module];
    const size_t chunks = l.lead.empty() ? 1 : size_t(l.lead[0]), per = parts.size() / chunks;  // MoE: per expert
    std::vector<uint8_t> data;
    std::vector<float> scale, input;
    for (size_t e = 0; e < chunks; ++e) {
      KilnFp8 k = to_kiln_fp8(std::vector<Fp8Linear>(parts.begin() + e * per, parts.begin() + (e + 1) * per),
                              per_channel);
      data.insert(data.end(), k.data.begin(), k.data.end());
      scale.insert(scale.end(), k.scale.begin(), k.scale.end());
      input.push_back(k.input_scale);
    }
    out.tensors[l.module + ".weight"] = {DType::F8_E4M3, std::move(data)};
    out.add_f32(l.module + ".weight_scale", scale);
    if (!per_channel) out.add_f32(l.module + ".input_scale", input);
  }
  if (f.kv_cache) {
    cfg.quant.kv_cache_quant_algo = KvCacheQuantAlgo::FP8;
    for (int64_t i = 0; i < cfg.num_layers; ++i) {
      const std::string a = fmt::format("model.layers.{}.self_attn.", i);
      auto scale = [&](const char* kv) {
        const std::string direct = a + kv + "_scale", proj = a + kv + "_proj." + kv + "_scale";
        return read_scalar(src, dir, src.has(direct) || !src.has(proj) ? direct : proj);
      };
      out.add_f32(layer_name(i, "attention.kv_cache_scale"), {scale("k"), scale("v")});
    }
  }
  return out;
}

// Reads a pre-quantized checkpoint's quantized tensors and sets cfg.quant (src/convert/hf_quant.h, hf_fp8.h).
PrequantTensors read_prequantized(const SafetensorsSet& src, const std::string& dir, const nlohmann::json& qc,
                                  const std::string& cfg_path, ModelConfig& cfg) {
  HfFp8 f8;
  if (hf_fp8_from_config(qc, cfg_path, &f8)) return read_fp8(src, dir, f8, cfg);
  return read_int4(src, dir, hf_quant_from_config(qc, cfg_path), cfg);
}

}  // namespace

void convert_checkpoint(const ConvertOptions& o) {
  if (!fs::is_directory(o.model_dir)) fail("--model {}: not a directory", o.model_dir);
  const std::string cfg_path = (fs::path(o.model_dir) / "config.json").string();
  if (!fs::exists(cfg_path)) fail("{}: missing (not a Hugging Face model folder?)", cfg_path);
  if (o.mapping.tp_size < 1) fail("--tp-size {}: must be at least 1", o.mapping.tp_size);
  if (o.mapping.pp_size < 1) fail("--pp-size {}: must be at least 1", o.mapping.pp_size);
  if (o.mapping.tp_size > 1)
    fail("--tp-size {}: tensor parallelism is not supported yet (one rank only)", o.mapping.tp_size);
  if (o.mapping.pp_size > 1)
    fail("--pp-size {}: pipeline parallelism is not supported yet (one rank only)", o.mapping.pp_size);
  nlohmann::json hf_json = read_json_file(cfg_path);
  std::optional<nlohmann::json> qc;
  if (hf_json.is_object() && hf_json.contains("quantization_config")) {
    qc = hf_json["quantization_config"];
    hf_json.erase("quantization_config");
  }
  ModelConfig cfg = config_from_hf(hf_json, cfg_path);
  if (o.rope_freq_checkpoint_dtype && cfg.position == PositionType::Rope) cfg.rope.freq_dtype = cfg.dtype;
  cfg.mapping = o.mapping;
  cfg.mapping.rank = 0;
  if (o.dtype) {
    if (!is_float(*o.dtype)) fail("--dtype {}: expected float32, float16 or bfloat16", dtype_name(*o.dtype));
    cfg.dtype = *o.dtype;
  }
  SafetensorsSet src(o.model_dir);
  PrequantTensors pre;
  if (qc) pre = read_prequantized(src, o.model_dir, *qc, cfg_path, cfg);  // sets cfg.quant; every tensor checked
  const auto recipes = hf_recipes(cfg);
  // Check every tensor before writing anything.
  for (auto& r : recipes)
    for (auto& part : r.parts) {
      if (!src.has(part.name)) fail("{}: missing tensor '{}' (needed for {})", o.model_dir, part.name, r.name);
      const TensorView& t = src.get(part.name);
      if (t.shape != part.shape)
        fail("{}: tensor '{}' has shape {} but the config implies {}", o.model_dir, part.name, t.shape_str(),
             shape_str(part.shape));
      if (!is_float(t.dtype))
        fail("{}: tensor '{}' has dtype {}, expected a float type (F32, F16 or BF16)", o.model_dir, part.name,
             dtype_st_name(t.dtype));
    }

  StagingDir out(o.output_dir);
  // The one rank (a mapping of more was refused above; sharding the recipes per rank comes with parallelism).
  WeightFileWriter w(cfg, "kiln-checkpoint");
  ProgressBar bar("convert", int64_t(recipes.size()));
  for (auto& r : recipes)
    w.add_lazy(r.name, cfg.dtype, [&, &r = r](uint8_t* dst) { assemble(r, src, o.model_dir, cfg.dtype, dst); });
  for (auto& [name, t] : pre.tensors) w.add(name, t.first, std::move(t.second));
  if (o.progress) w.on_progress([&](size_t done, size_t) { bar.update(int64_t(done)); });
  w.write(out.file(rank_file_name(cfg.mapping.rank)));
  bar.finish();
  write_checkpoint_config(out.file("config.json"), cfg);
  for (int i = 0; kCarriedFiles[i]; ++i) {
    fs::path f = fs::path(o.model_dir) / kCarriedFiles[i];
    if (fs::exists(f)) fs::copy_file(f, out.path() / kCarriedFiles[i]);
  }
  out.commit();
}

}  // namespace kiln
