#include "build/engine_builder.h"

#include <cmath>
#include <filesystem>
#include <vector>

#include "convert/convert.h"
#include "core/error.h"
#include "core/finite.h"
#include "core/fs_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/weights.h"

namespace fs = std::filesystem;

namespace kiln {

namespace {

// A model config for a synthetic engine: a kiln checkpoint config.json or a Hugging Face one.
ModelConfig synthetic_model(const std::string& path) {
  if (!fs::exists(path)) fail("--synthetic {}: no such file", path);
  auto j = read_json_file(path);
  return j.value("format", "") == "kiln-checkpoint" ? config_from_json(j, path) : config_from_hf(j, path);
}

}  // namespace

void build_engine(const BuildOptions& o) {
  const bool synthetic = !o.synthetic_config.empty();
  if (synthetic == !o.checkpoint_dir.empty()) fail("kiln build: give exactly one of --checkpoint and --synthetic");
  EngineInfo info;
  std::string cfg_path;
  if (synthetic) {
    info.model = synthetic_model(o.synthetic_config);
  } else {
    if (!fs::is_directory(o.checkpoint_dir)) fail("--checkpoint {}: not a directory", o.checkpoint_dir);
    cfg_path = (fs::path(o.checkpoint_dir) / "config.json").string();
    if (!fs::exists(cfg_path)) fail("{}: missing (not a kiln checkpoint?)", cfg_path);
    auto cj = read_json_file(cfg_path);
    if (cj.value("format", "") != "kiln-checkpoint")
      fail("{}: not a kiln checkpoint (run kiln convert on a Hugging Face folder first)", cfg_path);
    info.model = config_from_json(cj, cfg_path);
  }
  info.target = o.target;
  info.limits = o.limits;
  info.synthetic = synthetic;
  info.batch_invariant = o.batch_invariant;
  resolve_limits(info.limits, info.model);
  StagingDir out(o.output_dir);  // fails now, before planning, when the output exists
  DType weight_dtype;
  if (o.target == "cpu") {
    if (o.dtype && *o.dtype != DType::F32) fail("--dtype {}: the cpu target computes in float32", dtype_name(*o.dtype));
    info.compute_dtype = DType::F32;
    weight_dtype = DType::F32;  // the cpu backend reads fp32 weights in place
  } else if (o.target == "cuda") {
    if (!o.plan) fail("--target cuda: this kiln was built without CUDA");
    TargetPlan plan = o.plan(info, o.dtype);
    info.compute_dtype = plan.compute_dtype;
    info.gpu_arch = plan.gpu_arch;
    info.tactics = plan.tactics;
    weight_dtype = plan.weight_dtype;
  } else {
    fail("--target {}: unknown target (expected cpu or cuda)", o.target);
  }

  if (synthetic) {
    write_json_file(out.file("engine.json"), engine_info_to_json(info));
    out.commit();
    return;
  }

  const std::string ckpt_file = (fs::path(o.checkpoint_dir) / "rank0.safetensors").string();
  SafetensorsFile src(ckpt_file);
  check_weight_set(src, expected_weights(info.model), cfg_path);

  SafetensorsWriter w;
  for (auto& spec : expected_weights(info.model)) {
    const TensorView& t = src.get(spec.name);
    std::vector<uint8_t> bytes(size_t(t.numel()) * dtype_size(weight_dtype));
    std::vector<float> f(static_cast<size_t>(t.numel()));
    convert_to_f32(t.dtype, t.data, f.data(), f.size());
    if (const int64_t bad = first_non_finite(f.data(), f.size(), weight_dtype); bad >= 0)
      fail("{}: tensor '{}' holds {} at {} (flat index {}){}; refusing to build an engine with non-finite weights",
           ckpt_file, spec.name, f[size_t(bad)], index_str(bad, spec.shape), bad,
           std::isfinite(f[size_t(bad)]) ? fmt::format(", which overflows {}", dtype_name(weight_dtype)) : "");
    convert_from_f32(f.data(), weight_dtype, bytes.data(), f.size());
    w.add(spec.name, weight_dtype, spec.shape, std::move(bytes));
  }
  w.set_metadata("format", "kiln-engine");
  w.write(out.file("rank0.safetensors"));
  write_json_file(out.file("engine.json"), engine_info_to_json(info));
  for (int i = 0; kCarriedFiles[i]; ++i) {
    fs::path f = fs::path(o.checkpoint_dir) / kCarriedFiles[i];
    if (fs::exists(f)) fs::copy_file(f, out.path() / kCarriedFiles[i]);
  }
  out.commit();
}

}  // namespace kiln
