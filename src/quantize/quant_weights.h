// Quantizing one linear weight from fp32 values into a QuantScheme's stored form (src/model/weights.h), with the
// rounding of src/core/quant_math.h: symmetric scales absmax / qmax per tensor, channel or group (qmax 448 for fp8
// e4m3, 127 for int8, 7 for int4; 1 for an all-zero slice), q = quantize(w / scale).
#pragma once
#include <cstdint>
#include <vector>

#include "model/quant.h"

namespace kiln {

struct QuantizedWeight {
  std::vector<uint8_t> data;   // F8_E4M3 | I8 [lead, N, K] or I4X2 [lead, N, K / 2]
  std::vector<float> scale;    // scheme.scale_shape
};

// w: `lead` matrices [N, K] one after the other (lead 1 for a plain linear, E for MoE experts).
QuantizedWeight quantize_weight(const QuantScheme& s, const float* w, int64_t lead, int64_t N, int64_t K);

// The largest magnitude a scheme's weight type holds (448, 127 or 7).
float weight_qmax(const QuantScheme& s);

}  // namespace kiln
