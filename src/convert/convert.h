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
  // RoPE inverse frequencies: float32 (false, the default: what transformers' from_pretrained, vLLM and TensorRT-LLM
  // compute for any checkpoint dtype) or rounded to the HF checkpoint's dtype (true: `--rope-freq-dtype checkpoint`,
  // as transformers computes them for a model cast to that dtype in memory).
  bool rope_freq_checkpoint_dtype = false;
};

void convert_checkpoint(const ConvertOptions& opts);

}  // namespace kiln
