#include "quantize/quant_weights.h"

#include <cmath>

#include "core/error.h"
#include "core/quant_math.h"

namespace kiln {

float weight_qmax(const QuantScheme& s) {
  switch (s.weight_dtype) {
    case DType::F8_E4M3: return kFp8E4m3Max;
    case DType::I8: return kInt8Max;
    case DType::I4X2: return kInt4Max;
    default: fail("quantize: {} is not a quantized weight type", dtype_name(s.weight_dtype));
  }
}

QuantizedWeight quantize_weight(const QuantScheme& s, const float* w, int64_t lead, int64_t N, int64_t K) {
  const float qmax = weight_qmax(s);
  const int64_t groups = s.granularity == QuantGranularity::PerGroup ? K / s.group_size : 1;
  const int64_t per_matrix = s.granularity == QuantGranularity::PerTensor ? 1 : N * groups;
  QuantizedWeight q;
  q.scale.resize(size_t(lead * per_matrix));
  const bool packed = s.packing == WeightPacking::Int4x2;
  q.data.resize(size_t(lead * N * (packed ? K / 2 : K)));
  for (int64_t e = 0; e < lead; ++e) {
    const float* m = w + e * N * K;
    float* sc = q.scale.data() + e * per_matrix;
    if (s.granularity == QuantGranularity::PerTensor) {
      sc[0] = absmax_scale(m, N * K, qmax);
    } else {
      const int64_t g = K / groups;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t j = 0; j < groups; ++j) sc[n * groups + j] = absmax_scale(m + n * K + j * g, g, qmax);
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const float scale = s.granularity == QuantGranularity::PerTensor ? sc[0] : sc[n * groups + k / (K / groups)];
        const float v = m[n * K + k] / scale;
        const size_t at = size_t((e * N + n) * K + k);
        switch (s.weight_dtype) {
          case DType::F8_E4M3: q.data[at] = quantize_fp8(v); break;
          case DType::I8: q.data[at] = uint8_t(quantize_int8(v)); break;
          case DType::I4X2: {
            uint8_t& b = q.data[at / 2];
            const unsigned nib = unsigned(quantize_int4(v)) & 0xfu;
            b = k % 2 == 0 ? uint8_t((b & 0xf0u) | nib) : uint8_t((b & 0x0fu) | (nib << 4));
            break;
          }
          default: break;
        }
      }
  }
  return q;
}

}  // namespace kiln
