#include "build/engine_builder.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "build/target_kernels.h"
#include "core/error.h"
#include "core/finite.h"
#include "core/fs_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/carried_files.h"
#include "model/weight_file.h"
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

EngineTensor engine_tensor(const TensorView& t, const WeightSpec& spec, DType float_dtype) {
  EngineTensor e;
  const auto* src = static_cast<const uint8_t*>(t.data);
  if (spec.quant) {
    if (t.dtype != spec.dtype)
      fail("tensor '{}': {} data where the quantization stores {}", spec.name, dtype_name(t.dtype),
           dtype_name(spec.dtype));
    e.dtype = t.dtype;
    e.bytes.assign(src, src + t.nbytes);
    return e;
  }
  if (!is_float(t.dtype) || !is_float(float_dtype))
    fail("tensor '{}': {} -> {}: the build converts float weights only", spec.name, dtype_name(t.dtype),
         dtype_name(float_dtype));
  e.dtype = float_dtype;
  std::vector<float> f(static_cast<size_t>(t.numel()));  // [numel] the tensor in fp32, exact for F16/BF16
  convert_to_f32(t.dtype, t.data, f.data(), f.size());
  if (const int64_t bad = first_non_finite(f.data(), f.size(), float_dtype); bad >= 0)
    fail("tensor '{}' holds {} at {} (flat index {}){}; refusing to build an engine with non-finite weights",
         spec.name, f[size_t(bad)], index_str(bad, spec.shape), bad,
         std::isfinite(f[size_t(bad)]) ? fmt::format(", which overflows {}", dtype_name(float_dtype)) : "");
  if (t.dtype == float_dtype) {
    e.bytes.assign(src, src + t.nbytes);
    return e;
  }
  e.bytes.resize(f.size() * dtype_size(float_dtype));
  convert_from_f32(f.data(), float_dtype, e.bytes.data(), f.size());
  return e;
}

void build_engine(const BuildOptions& o) {
  const bool synthetic = !o.synthetic_config.empty();
  if (synthetic == !o.checkpoint_dir.empty()) fail("kiln build: give exactly one of --checkpoint and --synthetic");
  if (o.target != "cpu" && o.target != "cuda") fail("--target {}: unknown target (expected cpu or cuda)", o.target);
  EngineInfo info;
  std::string what;  // how errors name the source
  if (synthetic) {
    info.model = synthetic_model(o.synthetic_config);
    what = "--synthetic " + o.synthetic_config;
  } else {
    info.model = read_checkpoint_config(o.checkpoint_dir);
    what = "checkpoint " + o.checkpoint_dir;
    check_rank_files(o.checkpoint_dir, info.model.mapping);
  }
  // Refusals before anything is planned or written: more than one rank, a quantization without kernels.
  require_one_rank(info.model.mapping, what);
  require_quant_kernels(o.target, info.model.quant, what);
  if (synthetic && info.model.quant.any())
    fail("{} has a quantization: synthetic engines have random float weights (quantize a checkpoint with kiln "
         "quantize instead)", what);
  info.target = o.target;
  info.limits = o.limits;
  info.synthetic = synthetic;
  info.batch_invariant = o.batch_invariant;
  resolve_limits(info.limits, info.model);
  StagingDir out(o.output_dir);  // fails now, before planning, when the output exists
  DType weight_dtype;  // the float weights' dtype in the engine
  if (o.target == "cpu") {
    if (o.dtype && *o.dtype != DType::F32) fail("--dtype {}: the cpu target computes in float32", dtype_name(*o.dtype));
    info.compute_dtype = DType::F32;
    weight_dtype = DType::F32;  // the cpu backend reads fp32 weights in place
  } else {
    if (!o.plan) fail("--target cuda: this kiln was built without CUDA");
    TargetPlan plan = o.plan(info, o.dtype);
    info.compute_dtype = plan.compute_dtype;
    info.gpu_arch = plan.gpu_arch;
    info.tactics = plan.tactics;
    weight_dtype = plan.weight_dtype;
  }

  if (synthetic) {
    write_json_file(out.file("engine.json"), engine_info_to_json(info));
    out.commit();
    return;
  }

  for (int64_t rank = 0; rank < info.model.mapping.world_size(); ++rank) {
    const WeightFile src((fs::path(o.checkpoint_dir) / rank_file_name(rank)).string(), info.model);
    WeightFileWriter w(info.model, "kiln-engine");
    for (auto& spec : src.specs()) {
      const TensorView& t = src.get(spec.name);
      const DType dt = spec.quant ? spec.dtype : weight_dtype;
      w.add_lazy(spec.name, dt, [&t, &spec, weight_dtype, file = src.path()](uint8_t* dst) {
        EngineTensor e;
        try {
          e = engine_tensor(t, spec, weight_dtype);
        } catch (const Error& ex) {
          fail("{}: {}", file, ex.what());
        }
        std::copy(e.bytes.begin(), e.bytes.end(), dst);
      });
    }
    w.write(out.file(rank_file_name(rank)));
  }
  write_json_file(out.file("engine.json"), engine_info_to_json(info));
  for (int i = 0; kCarriedFiles[i]; ++i) {
    fs::path f = fs::path(o.checkpoint_dir) / kCarriedFiles[i];
    if (fs::exists(f)) fs::copy_file(f, out.path() / kCarriedFiles[i]);
  }
  out.commit();
}

}  // namespace kiln
