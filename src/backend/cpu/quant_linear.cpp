#include "backend/cpu/quant_linear.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/ranges.h>

#include "backend/cpu/cpu_gemm.h"
#include "core/error.h"
#include "core/quant_math.h"

namespace kiln {

namespace {

int64_t numel_after_lead(const Tensor& t, size_t lead) {
  int64_t n = 1;
  for (size_t i = lead; i < t.shape.size(); ++i) n *= t.shape[i];
  return n;
}

// The stored value of element (n, k) of the quantized data.
float stored_value(const CpuQuantMatrix& w, int64_t n, int64_t k) {
  switch (w.scheme.weight_dtype) {
    case DType::F8_E4M3: return f8e4m3_to_f32(static_cast<const uint8_t*>(w.data)[n * w.K + k]);
    case DType::I8: return float(static_cast<const int8_t*>(w.data)[n * w.K + k]);
    case DType::I4X2: {
      const uint8_t b = static_cast<const uint8_t*>(w.data)[n * (w.K / 2) + k / 2];
      return float(k % 2 == 0 ? int4x2_lo(b) : int4x2_hi(b));
    }
    default: fail("quantized linear: weight dtype {} is not a quantized storage type", dtype_name(w.scheme.weight_dtype));
  }
}

// Index of (n, k)'s scale (and zero point) in weight_scale.
int64_t scale_index(const CpuQuantMatrix& w, int64_t n, int64_t k) {
  switch (w.scheme.granularity) {
    case QuantGranularity::PerTensor: return 0;
    case QuantGranularity::PerChannel: return n;
    case QuantGranularity::PerGroup: return n * (w.K / w.scheme.group_size) + k / w.scheme.group_size;
    case QuantGranularity::None: break;
  }
  fail("quantized linear: the weight is not quantized");
}

// wd [N, K]: the dequantized weight (weight-only), or the stored values unscaled (W8A8).
void expand_weight(ThreadPool& pool, const CpuQuantMatrix& w, bool scaled, float* wd) {
  pool.parallel_for(w.N, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n)
      for (int64_t k = 0; k < w.K; ++k) {
        float q = stored_value(w, n, k);
        if (scaled) {
          const int64_t s = scale_index(w, n, k);
          if (w.zero) q -= float(w.zero[s]);
          q *= w.scale[s];
        }
        wd[n * w.K + k] = q;
      }
  });
}

}  // namespace

CpuQuantMatrix cpu_quant_matrix(const QuantScheme& s, const Tensor& weight, const Tensor& weight_scale,
                                const Tensor& weight_zero, const Tensor& input_scale, const Tensor& pre_quant_scale,
                                int64_t index, const char* what) {
  if (!s.quantized()) fail("{}: not a quantized weight", what);
  const size_t lead = weight.shape.size() - 2;
  if (weight.shape.size() < 2 || weight.dtype != s.weight_dtype)
    fail("{}: quantized weight {} {} where the scheme stores {}", what, dtype_name(weight.dtype), weight.shape_str(),
         dtype_name(s.weight_dtype));
  CpuQuantMatrix m;
  m.scheme = s;
  m.N = weight.dim(-2);
  m.K = s.packing == WeightPacking::Int4x2 ? 2 * weight.dim(-1) : weight.dim(-1);
  const std::vector<int64_t> lead_dims(weight.shape.begin(), weight.shape.begin() + int64_t(lead));
  auto check = [&](const Tensor& t, bool present, std::vector<int64_t> shape, DType dt, const char* name) {
    if (!present) {
      if (!t.empty()) fail("{}: unexpected {} for this scheme", what, name);
      return;
    }
    if (t.empty() || t.dtype != dt || t.shape != shape)
      fail("{}: {} must be {} [{}], not {}", what, name, dtype_name(dt), fmt::join(shape, ", "),
           t.empty() ? "missing" : t.shape_str());
  };
  std::vector<int64_t> one = lead_dims, per_k = lead_dims;
  one.push_back(1);
  per_k.push_back(m.K);
  check(weight_scale, true, s.scale_shape(lead_dims, m.N, m.K), DType::F32, "weight_scale");
  check(weight_zero, s.zero_point, s.scale_shape(lead_dims, m.N, m.K), DType::I8, "weight_zero");
  check(input_scale, s.input_scale, one, DType::F32, "input_scale");
  check(pre_quant_scale, s.pre_quant_scale, per_k, DType::F32, "pre_quant_scale");
  const int64_t per_scale = numel_after_lead(weight_scale, lead);
  m.data = static_cast<const uint8_t*>(weight.data) + index * numel_after_lead(weight, lead) * dtype_size(weight.dtype);
  m.scale = weight_scale.ptr<float>() + index * per_scale;
  if (s.zero_point) m.zero = weight_zero.ptr<int8_t>() + index * per_scale;
  if (s.input_scale) m.input_scale = input_scale.ptr<float>() + index;
  if (s.pre_quant_scale) m.pre_quant_scale = pre_quant_scale.ptr<float>() + index * m.K;
  return m;
}

void cpu_quant_linear(ThreadPool& pool, const float* x, int64_t T, const CpuQuantMatrix& w, float* out) {
  const int64_t N = w.N, K = w.K;
  const QuantScheme& s = w.scheme;
  std::vector<float> wd(size_t(N * K));  // [N, K]
  if (s.activations == ActQuant::None) {
    expand_weight(pool, w, true, wd.data());
    if (!w.pre_quant_scale) {
      row_invariant_gemm(x, T, wd.data(), N, K, out);
      return;
    }
    std::vector<float> xs(size_t(T * K));  // [T, K] x * pre_quant_scale
    for (int64_t t = 0; t < T; ++t)
      for (int64_t k = 0; k < K; ++k) xs[t * K + k] = x[t * K + k] * w.pre_quant_scale[k];
    row_invariant_gemm(xs.data(), T, wd.data(), N, K, out);
    return;
  }
  // W8A8: quantize each activation row, multiply the quantized values, scale the accumulators.
  expand_weight(pool, w, false, wd.data());
  const bool fp8 = s.act_dtype == DType::F8_E4M3;
  if (!fp8 && s.act_dtype != DType::I8) fail("quantized linear: activations of {}", dtype_name(s.act_dtype));
  std::vector<float> xq(static_cast<size_t>(T * K)), a(static_cast<size_t>(T));  // [T, K] quantized values, [T] row scales
  pool.parallel_for(T, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float* xr = x + t * K;
      a[t] = s.activations == ActQuant::PerTensorStatic ? w.input_scale[0]
                                                        : absmax_scale(xr, K, fp8 ? kFp8E4m3Max : kInt8Max);
      for (int64_t k = 0; k < K; ++k) {
        const float v = xr[k] / a[t];
        xq[t * K + k] = fp8 ? fp8_round_trip(v) : float(quantize_int8(v));
      }
    }
  });
  std::vector<float> acc(size_t(T * N));  // [T, N]
  constexpr int64_t kExactChunk = 1024;   // 128 * 128 * 1024 = 2^24: integer sums stay exact in fp32
  if (fp8 || K <= kExactChunk) {
    row_invariant_gemm(xq.data(), T, wd.data(), N, K, acc.data());
  } else {
    std::vector<double> sum(size_t(T * N), 0.0);
    std::vector<float> xc, wc, part(size_t(T * N));
    for (int64_t k0 = 0; k0 < K; k0 += kExactChunk) {
      const int64_t kc = std::min(kExactChunk, K - k0);
      xc.resize(size_t(T * kc));
      wc.resize(size_t(N * kc));
      for (int64_t t = 0; t < T; ++t) std::copy_n(&xq[t * K + k0], kc, &xc[t * kc]);
      for (int64_t n = 0; n < N; ++n) std::copy_n(&wd[n * K + k0], kc, &wc[n * kc]);
      row_invariant_gemm(xc.data(), T, wc.data(), N, kc, part.data());
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += double(part[i]);
    }
    for (size_t i = 0; i < sum.size(); ++i) acc[i] = float(sum[i]);
  }
  const bool per_channel = s.granularity == QuantGranularity::PerChannel;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n) out[t * N + n] = (acc[t * N + n] * a[t]) * w.scale[per_channel ? n : 0];
}

}  // namespace kiln
