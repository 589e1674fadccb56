#include "quantize/smooth.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/weights.h"

namespace kiln {

namespace {

// s = amax_x^alpha / amax_w^(1 - alpha), 1 where the channel saw nothing.
float factor(float ax, float aw, double alpha) {
  if (!(ax > 0) || !(aw > 0)) return 1.0f;
  const double s = std::pow(double(ax), alpha) / std::pow(double(aw), 1.0 - alpha);
  return float(std::clamp(s, 1e-5, 1e5));
}

// max over rows of |w[:, k]| for w [N, K].
std::vector<float> column_amax(const FloatTensor& w) {
  const int64_t N = w.shape[0], K = w.shape[1];
  std::vector<float> a(size_t(K), 0.0f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) a[size_t(k)] = std::max(a[size_t(k)], std::fabs(w.v[size_t(n * K + k)]));
  return a;
}

void scale_column(FloatTensor& w, int64_t k, float s) {
  const int64_t N = w.shape[0], K = w.shape[1];
  for (int64_t n = 0; n < N; ++n) w.v[size_t(n * K + k)] *= s;
}

void scale_row(FloatTensor& w, int64_t r, float s) {
  const int64_t K = w.shape.size() == 2 ? w.shape[1] : 1;
  for (int64_t k = 0; k < K; ++k) w.v[size_t(r * K + k)] *= s;
}

const LinearStats& stats(const CalibStats& st, const std::string& module) {
  auto it = st.linears.find(module);
  if (it == st.linears.end()) fail("SmoothQuant: calibration saw no input of {}", module);
  return it->second;
}

// Smooths the linear `module` whose input comes from the norm `norm` (weight, and bias when present).
void smooth_after_norm(std::map<std::string, FloatTensor>& w, const CalibStats& st, const std::string& module,
                       const std::string& norm, double alpha) {
  FloatTensor& lw = w.at(module + ".weight");
  const auto aw = column_amax(lw);
  const auto& ax = stats(st, module).amax;
  for (int64_t k = 0; k < lw.shape[1]; ++k) {
    const float s = factor(ax[size_t(k)], aw[size_t(k)], alpha);
    scale_column(lw, k, s);
    w.at(norm + ".weight").v[size_t(k)] /= s;
    if (w.count(norm + ".bias")) w.at(norm + ".bias").v[size_t(k)] /= s;
  }
}

}  // namespace

void smooth_checkpoint(std::map<std::string, FloatTensor>& w, const ModelConfig& c, const CalibStats& st,
                       double alpha) {
  if (c.num_experts > 0) fail("SmoothQuant: MoE experts are not supported");
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim, group = nh / nkv;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    auto L = [&](const std::string& s) { return layer_name(l, s); };
    // dense reads the attention output: channel h * hd + d comes from row d of kv head h / group of v, so the
    // query heads of one kv head share a factor.
    {
      FloatTensor& dense = w.at(L("attention.dense.weight"));
      FloatTensor& qkv = w.at(L("attention.qkv.weight"));
      FloatTensor* vbias = w.count(L("attention.qkv.bias")) ? &w.at(L("attention.qkv.bias")) : nullptr;
      const auto aw = column_amax(dense);
      const auto& ax = stats(st, L("attention.dense")).amax;
      for (int64_t kvh = 0; kvh < nkv; ++kvh)
        for (int64_t d = 0; d < hd; ++d) {
          float mx = 0, mw = 0;
          for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
            mx = std::max(mx, ax[size_t(h * hd + d)]);
            mw = std::max(mw, aw[size_t(h * hd + d)]);
          }
          const float s = factor(mx, mw, alpha);
          for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) scale_column(dense, h * hd + d, s);
          const int64_t vrow = (nh + nkv) * hd + kvh * hd + d;
          scale_row(qkv, vrow, 1.0f / s);
          if (vbias) vbias->v[size_t(vrow)] /= s;
        }
    }
    smooth_after_norm(w, st, L("attention.qkv"), L("input_norm"), alpha);
    if (c.activation == Activation::SiluGated) {
      smooth_after_norm(w, st, L("mlp.gate_up"), L("post_norm"), alpha);
      // down reads silu(gate) * up: channel i scales with up row I + i.
      FloatTensor& down = w.at(L("mlp.down.weight"));
      FloatTensor& gu = w.at(L("mlp.gate_up.weight"));
      FloatTensor* gub = w.count(L("mlp.gate_up.bias")) ? &w.at(L("mlp.gate_up.bias")) : nullptr;
      const int64_t I = c.intermediate_size;
      const auto aw = column_amax(down);
      const auto& ax = stats(st, L("mlp.down")).amax;
      for (int64_t i = 0; i < I; ++i) {
        const float s = factor(ax[size_t(i)], aw[size_t(i)], alpha);
        scale_column(down, i, s);
        scale_row(gu, I + i, 1.0f / s);
        if (gub) gub->v[size_t(I + i)] /= s;
      }
    } else {
      smooth_after_norm(w, st, L("mlp.fc"), L("post_norm"), alpha);  // GELU's down has nothing to fold into
    }
  }
}

}  // namespace kiln
