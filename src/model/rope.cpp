#include "model/rope.h"

#include <cmath>

namespace kiln {

std::vector<float> rope_inv_freq(const RopeConfig& r, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in float32
    float expo = float(2 * i) / float(head_dim);
    f[i] = 1.0f / std::pow(float(r.theta), expo);
  }
  if (r.scaling == RopeScaling::Linear) {
    for (auto& v : f) v = float(v / r.factor);
  } else if (r.scaling == RopeScaling::Llama3) {
    const double low_wavelen = double(r.original_max_position) / r.low_freq_factor;
    const double high_wavelen = double(r.original_max_position) / r.high_freq_factor;
    for (auto& v : f) {
      double wavelen = 2.0 * M_PI / v;
      if (wavelen > low_wavelen) {
        v = float(v / r.factor);
      } else if (wavelen >= high_wavelen) {
        double smooth = (double(r.original_max_position) / wavelen - r.low_freq_factor) /
                        (r.high_freq_factor - r.low_freq_factor);
        v = float((1.0 - smooth) * v / r.factor + smooth * v);
      }
    }
  }
  if (r.freq_dtype != DType::F32) {
    std::vector<uint16_t> tmp(f.size());
    convert_from_f32(f.data(), r.freq_dtype, tmp.data(), f.size());
    convert_to_f32(r.freq_dtype, tmp.data(), f.data(), f.size());
  }
  return f;
}

}  // namespace kiln
