// kiln convert: Hugging Face checkpoint folder -> kiln checkpoint folder (config.json + rank{N}.safetensors for
// every rank of the mapping). A float checkpoint only (a Hugging Face quantization_config is refused), one rank only
// until the parallelism issue lands (--tp-size / --pp-size above 1 are refused).
#pragma once
#include <optional>
#include <string>

#include "core/dtype.h"
#include "parallel/mapping.h"

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
  Mapping mapping;  // --tp-size, --pp-size: recorded in config.json; more than one rank is refused for now
};

void convert_checkpoint(const ConvertOptions& opts);

}  // namespace kiln
