// Per-architecture name maps: how each kiln tensor is assembled from Hugging Face tensors.
// A recipe concatenates its parts along dim 0 (each optionally transposed first, for GPT-2's Conv1D) and
// reshapes the result to the kiln shape. This is the only architecture-specific code in the converter.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace kiln {

struct HfPart {
  std::string name;             // HF tensor name
  std::vector<int64_t> shape;   // its shape in the HF file
  bool transpose = false;       // 2-D transpose before concatenation
};

struct Recipe {
  std::string name;             // kiln tensor name
  std::vector<int64_t> shape;   // kiln shape
  std::vector<HfPart> parts;
};

// The float tensors of c (quantized ones, when c.quant quantizes some, come from src/convert/hf_quant.h).
std::vector<Recipe> hf_recipes(const ModelConfig& c);

}  // namespace kiln
