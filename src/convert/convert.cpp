#include "convert/convert.h"

#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <optional>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "convert/hf_map.h"
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

// The quantized linear layers of a pre-quantized checkpoint, in kiln's layout.
struct PrequantLinears {
  std::map<std::string, KilnInt4> modules;  // by kiln module name
};

// Decodes every quantized linear layer (its HF parts: the float recipe's), chooses the group size kiln records (the
// largest run of inputs that shares a group in every layer) and sets cfg.quant; layers the checkpoint keeps in float
// (no qweight: usually lm_head) are excluded.
PrequantLinears read_prequantized(const SafetensorsSet& src, const std::string& dir, const HfQuant& hq,
                                  ModelConfig& cfg) {
  ModelConfig fcfg = cfg;
  fcfg.quant = QuantConfig{};
  std::map<std::string, std::vector<HfPart>> parts;
  for (auto& r : hf_recipes(fcfg)) parts[r.name] = r.parts;
  std::map<std::string, std::vector<Int4Linear>> layers;
  std::vector<std::string> excluded;
  int64_t run = 0;
  for (const LinearSpec& l : linear_layers(fcfg)) {
    const auto& ps = parts.at(l.module + ".weight");
    int quantized = 0;
    for (auto& p : ps) quantized += src.has(p.name.substr(0, p.name.size() - 7) + ".qweight");
    if (quantized == 0) {
      excluded.push_back(l.module);
      continue;
    }
    if (quantized != int(ps.size()))
      fail("{}: {} checkpoint: only some of the layers fused into {} are quantized", dir, hq.name, l.module);
    for (auto& p : ps) {
      if (p.transpose) fail("{}: {} checkpoints of {} are not supported", dir, hq.name, cfg.architecture);
      Int4Linear il = read_int4_linear(src, dir, p.name.substr(0, p.name.size() - 7), hq, p.shape[0], p.shape[1]);
      const int64_t r = int4_run_length(il);
      run = run == 0 ? r : std::gcd(run, r);
      layers[l.module].push_back(std::move(il));
    }
  }
  if (layers.empty()) fail("{}: {} checkpoint without any quantized layer (no *.qweight)", dir, hq.name);
  cfg.quant.quant_algo = QuantAlgo::W4A16_GPTQ;
  cfg.quant.group_size = run;
  cfg.quant.exclude_modules = excluded;
  PrequantLinears out;
  for (auto& [m, ls] : layers) out.modules[m] = to_kiln_int4(ls, run);
  return out;
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
  std::optional<HfQuant> hq;
  if (hf_json.is_object() && hf_json.contains("quantization_config")) {
    hq = hf_quant_from_config(hf_json["quantization_config"], cfg_path);
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
  PrequantLinears pre;
  if (hq) pre = read_prequantized(src, o.model_dir, *hq, cfg);  // sets cfg.quant; every tensor checked
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
  for (auto& [module, q] : pre.modules) {
    w.add(module + ".weight", DType::I4X2, std::move(q.data));
    std::vector<uint8_t> s(q.scale.size() * 4), z(q.zero.size());
    std::memcpy(s.data(), q.scale.data(), s.size());
    std::memcpy(z.data(), q.zero.data(), z.size());
    w.add(module + ".weight_scale", DType::F32, std::move(s));
    w.add(module + ".weight_zero", DType::I8, std::move(z));
  }
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
