// kiln convert: Hugging Face checkpoint folder -> kiln checkpoint folder (config.json + rank0.safetensors).
#pragma once
#include <optional>
#include <string>

#include "core/dtype.h"

namespace kiln {

struct ConvertOptions {
  std::string model_dir;
  std::string output_dir;
  std::optional<DType> dtype;  // default: the checkpoint's dtype
  bool progress = true;
  // RoPE inverse frequencies: rounded to the HF checkpoint's dtype (false, the default: what transformers computes
  // when it runs the model in that dtype) or kept in float32 (true: transformers loading the model in float32).
  bool rope_freq_f32 = false;
};

void convert_checkpoint(const ConvertOptions& opts);

}  // namespace kiln
