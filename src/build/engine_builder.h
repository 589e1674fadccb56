// kiln build: kiln checkpoint -> engine directory (engine.json + rank{N}.safetensors in the target's layout, one
// per rank of the checkpoint's mapping). A synthetic build takes only a model config and writes no weights (they
// are generated at load). A checkpoint of more than one rank, or one whose quantization needs a kernel the target
// lacks (build/target_kernels.h), is refused before anything is written.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "build/engine_format.h"
#include "io/safetensors.h"
#include "model/weights.h"

namespace kiln {

// What a non-cpu target decides for an engine: weight and compute dtypes, the GPU architecture it is built for,
// and measured kernel choices (stored in engine.json "tactics").
struct TargetPlan {
  DType weight_dtype = DType::F32;
  DType compute_dtype = DType::F32;
  std::string gpu_arch;
  nlohmann::json tactics = nlohmann::json::object();
};

struct BuildOptions {
  std::string checkpoint_dir;    // a kiln checkpoint; or
  std::string synthetic_config;  // a config.json (kiln checkpoint or Hugging Face format): random weights
  std::string output_dir;
  std::string target = "cpu";
  std::optional<DType> dtype;  // cuda compute dtype (float16 | bfloat16)
  EngineLimits limits;
  bool batch_invariant = false;  // EngineInfo::batch_invariant (cpu: always so; accepted and recorded)
  bool progress = true;          // a progress bar per rank file on stderr, when it is a terminal
  // Planner for non-cpu targets, given the engine (model, limits) and the requested dtype. Empty: the target
  // is not available in this build.
  std::function<TargetPlan(const EngineInfo&, std::optional<DType>)> plan;
};

void build_engine(const BuildOptions& opts);

// One weight in the engine's layout: a float tensor in the target's weight dtype (its bytes as they are when the
// checkpoint already has that dtype, else converted through fp32); quantized data and quantization parameters
// (spec.quant) exactly as in the checkpoint, never widened or converted.
struct EngineTensor {
  DType dtype = DType::F32;
  std::vector<uint8_t> bytes;
};
EngineTensor engine_tensor(const TensorView& t, const WeightSpec& spec, DType float_dtype);

}  // namespace kiln
