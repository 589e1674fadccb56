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
#include "model/config.h"

namespace fs = std::filesystem;

namespace kiln {

const char* const kCarriedFiles[] = {"tokenizer.json",   "tokenizer_config.json",   "generation_config.json",
                                     "vocab.json",       "merges.txt",              "special_tokens_map.json",
                                     "tokenizer.model",  nullptr};

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
  ModelConfig cfg = config_from_hf(read_json_file(cfg_path), cfg_path);
  if (o.dtype) {
    if (!is_float(*o.dtype)) fail("--dtype {}: expected float32, float16 or bfloat16", dtype_name(*o.dtype));
    cfg.dtype = *o.dtype;
  }
  if (o.rope_freq_f32) cfg.rope.freq_dtype = DType::F32;
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
    }

  StagingDir out(o.output_dir);
  SafetensorsWriter w;
  ProgressBar bar("convert", int64_t(recipes.size()));
  for (auto& r : recipes)
    w.add_lazy(r.name, cfg.dtype, r.shape, [&, &r = r](uint8_t* dst) { assemble(r, src, o.model_dir, cfg.dtype, dst); });
  if (o.progress) w.on_progress([&](size_t done, size_t) { bar.update(int64_t(done)); });
  w.set_metadata("format", "kiln-checkpoint");
  w.write(out.file("rank0.safetensors"));
  bar.finish();
  nlohmann::json j = config_to_json(cfg);
  j["format"] = "kiln-checkpoint";
  j["format_version"] = 1;
  write_json_file(out.file("config.json"), j);
  for (int i = 0; kCarriedFiles[i]; ++i) {
    fs::path f = fs::path(o.model_dir) / kCarriedFiles[i];
    if (fs::exists(f)) fs::copy_file(f, out.path() / kCarriedFiles[i]);
  }
  out.commit();
}

}  // namespace kiln
