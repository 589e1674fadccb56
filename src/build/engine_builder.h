// kiln build: kiln checkpoint -> engine directory (engine.json + rank0.safetensors in the target's layout).
#pragma once
#include <optional>
#include <string>

#include "build/engine_format.h"

namespace kiln {

struct BuildOptions {
  std::string checkpoint_dir;
  std::string output_dir;
  std::string target = "cpu";
  std::optional<DType> dtype;  // cuda compute dtype (float16 | bfloat16)
  EngineLimits limits;
};

void build_engine(const BuildOptions& opts);

}  // namespace kiln
