// The rounding of quantized values, shared by the quantizer and the cpu backend, and the one every GPU kernel must
// reproduce (docs/ARCHITECTURE.md, "Quantization"):
//   int8 / int4: q = clamp(round_half_even(v), lo, hi) of the fp32 value v = x / scale (an IEEE fp32 division);
//   fp8 e4m3:    q = e4m3(v), round to nearest even, saturated to +-448 (CUDA's __NV_SATFINITE);
//   per-token activation scale of a row: absmax(row) / qmax in fp32 (qmax 127 for int8, 448 for fp8), 1 when the
//   row is all zeros.
// torch computes the same with `(x / s).round().clamp(lo, hi)` and `(x / s).clamp(-448, 448).to(float8_e4m3fn)`.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/dtype.h"

namespace kiln {

constexpr float kFp8E4m3Max = 448.0f;
constexpr float kInt8Max = 127.0f;
constexpr float kInt4Max = 7.0f;

// Round half to even (the default floating-point rounding mode, which kiln never changes), then clamp.
inline int32_t round_clamp(float v, int32_t lo, int32_t hi) {
  if (std::isnan(v)) return 0;
  const float r = std::nearbyint(std::clamp(v, float(lo), float(hi)));
  return int32_t(r);
}
inline int8_t quantize_int8(float v) { return int8_t(round_clamp(v, -128, 127)); }
inline int quantize_int4(float v) { return round_clamp(v, -8, 7); }
inline uint8_t quantize_fp8(float v) { return f32_to_f8e4m3(v, Fp8Overflow::Saturate); }

// The value an fp8 activation or weight takes after quantization (exact in fp32).
inline float fp8_round_trip(float v) { return f8e4m3_to_f32(quantize_fp8(v)); }

// absmax(row) / qmax, or 1 for a row of zeros (any scale represents it exactly).
inline float absmax_scale(const float* row, int64_t n, float qmax) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(row[i]));
  return m > 0.0f ? m / qmax : 1.0f;
}

}  // namespace kiln
