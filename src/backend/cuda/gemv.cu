// Bandwidth-bound GEMV for decode: out[t, n] = sum_k x[t, k] w[n, k] (+ bias[n]) for T <= 8 rows, one pass
// over the weights. One warp per output column n: 16-byte streaming loads of w (4 in flight per lane, the first
// ones issued before waiting on the previous kernel), x through L1, fp32 accumulation, a warp reduction.
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kernels.h"

namespace kiln::cuda {

namespace {

constexpr int kWarps = 4;   // output columns per block
constexpr int kUnroll = 4;  // 16-byte weight loads in flight per lane

template <class T, class O, int R>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(GemvKParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int64_t nv = p.K / 8;  // 16-byte vectors per row
  const bool active = n < p.N;
  const uint4* w = reinterpret_cast<const uint4*>(static_cast<const T*>(p.w) + (active ? n : 0) * p.K);
  // The weights do not depend on earlier kernels: start streaming them before the dependency wait.
  uint4 wv[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t v = lane + int64_t(u) * 32;
    wv[u] = active && v < nv ? ld_stream(w + v) : make_uint4(0, 0, 0, 0);
  }
  pdl_wait();
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.f;
  const T* x = static_cast<const T*>(p.x);
  for (int64_t base = 0; base < nv; base += 32 * kUnroll) {
    uint4 next[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = base + 32 * kUnroll + lane + int64_t(u) * 32;
      next[u] = active && v < nv ? ld_stream(w + v) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = base + lane + int64_t(u) * 32;
      if (v < nv) {
        float wf[8];
        unpack8<T>(wv[u], wf);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          if (r < p.T) {
            const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + int64_t(r) * p.K) + v);
            float xf[8];
            unpack8<T>(xv, xf);
#pragma unroll
            for (int i = 0; i < 8; ++i) acc[r] = fmaf(wf[i], xf[i], acc[r]);
          }
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wv[u] = next[u];
  }
  pdl_launch_dependents();
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = warp_sum(acc[r]);
  if (lane == 0 && active) {
    const float b = p.bias ? to_f(static_cast<const T*>(p.bias)[n]) : 0.f;
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (r < p.T) static_cast<O*>(p.out)[int64_t(r) * p.N + n] = from_f<O>(acc[r] + b);
  }
}

template <class T, class O>
void launch_rows(const GemvKParams& p, cudaStream_t s) {
  const dim3 grid(unsigned(ceil_div(p.N, kWarps))), block(kWarps * 32);
  if (p.T == 1) {
    launch_pdl(gemv_kernel<T, O, 1>, grid, block, 0, s, p);
  } else if (p.T == 2) {
    launch_pdl(gemv_kernel<T, O, 2>, grid, block, 0, s, p);
  } else if (p.T <= 4) {
    launch_pdl(gemv_kernel<T, O, 4>, grid, block, 0, s, p);
  } else {
    launch_pdl(gemv_kernel<T, O, 8>, grid, block, 0, s, p);
  }
}

}  // namespace

void GemvKParams::check() const {
  if (!x || !w || !out) throw_error("gemv: null pointer");
  if (!supports(T, K) || N <= 0) throw_error("gemv: needs 1..8 rows and K a multiple of 8");
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(w)) % 16) throw_error("gemv: x and w must be 16-byte aligned");
}

void invoke(const GemvKParams& p, cudaStream_t s) {
  p.check();
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.out_dt == DType::F32) {
      launch_rows<T, float>(p, s);
    } else if (p.out_dt == p.dt) {
      launch_rows<T, T>(p, s);
    } else {
      throw_error("gemv: output must be float32 or the compute dtype");
    }
  });
}

}  // namespace kiln::cuda
