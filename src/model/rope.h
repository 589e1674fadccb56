// RoPE inverse frequencies for every variant (default, linear, llama3), computed as transformers does.
#pragma once
#include <vector>

#include "model/config.h"

namespace kiln {

// [head_dim / 2] inverse frequencies; angle(pos, i) = pos * inv_freq[i]. Rotation is the "rotate half"
// convention: x[i] pairs with x[i + head_dim / 2].
std::vector<float> rope_inv_freq(const RopeConfig& rope, int64_t head_dim);

}  // namespace kiln
