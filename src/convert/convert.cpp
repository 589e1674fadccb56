#include "convert/convert.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "convert/hf_map.h"
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
  ModelConfig cfg = config_from_hf(read_json_file(cfg_path), cfg_path);
  if (o.rope_freq_checkpoint_dtype && cfg.position == PositionType::Rope) cfg.rope.freq_dtype = cfg.dtype;
  cfg.mapping = o.mapping;
  cfg.mapping.rank = 0;
  if (o.dtype) {
    if (!is_float(*o.dtype)) fail("--dtype {}: expected float32, float16 or bfloat16", dtype_name(*o.dtype));
    cfg.dtype = *o.dtype;
  }
  SafetensorsSet src(o.model_dir);
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
