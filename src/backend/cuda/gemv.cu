// Bandwidth-bound GEMV for decode: out[t, n] = sum_k x[t, k] w[n, k] (+ bias[n]) for T <= 8 rows, one pass
// over the weights. One warp per output column n: 16-byte streaming loads of w (4 or 8 in flight per lane: a
// tactic; the first ones issued before waiting on the previous kernel), x through L1, fp32 accumulation, a warp
// reduction. A SiLU-gated form computes the gate and up columns together and writes silu(gate) * up.
// Memory-level tuning (measured on the H100: bench/gpu/NOTES.md, sessions 4 and 5): L2 prefetch of its own and the
// next GEMV's weights while the kernel before it (a decode attention) leaves memory idle (GemvKParams); rows read
// from a per-warp rotated start (stagger); a grid of one resident wave, balanced so that every warp gets as many
// columns; a norm prologue that holds its row in registers where K allows it. The next kernel may launch as soon
// as this one passed its dependency wait. A float32-output GEMV (the lm_head) can also make the greedy choice.
#include <algorithm>
#include <map>
#include <type_traits>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/mma_util.cuh"

namespace kiln::cuda {

namespace {

constexpr int kWarps = 4;        // warps per block, one output column at a time each
constexpr int kBlocksPerSm = 8;  // grid cap: columns are strided over at most this many blocks per SM
constexpr int kNormVecs = 4;     // the register norm prologue: 16-byte vectors per thread (K <= 4096)

// Block-wide sum for the norm prologue (every thread gets the result).
__device__ float block_sum_f(float v, float* scratch) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = 0.f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) r += scratch[w];
  return r;
}

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Prefetches into L2 this warp's equal slice (warp w of `warps`) of the first `count` 128-byte lines of each of
// `halves` halves of `base` (each `half_lines` long).
__device__ void prefetch_slice(const void* base, int64_t half_lines, int64_t halves, int64_t count, int64_t w,
                               int64_t warps, int lane) {
  count = min64(count, half_lines);
  if (count <= 0) return;
  const int64_t per = (count + warps - 1) / warps, l1 = min64(count, (w + 1) * per);
  for (int64_t h = 0; h < halves; ++h) {
    const char* b = static_cast<const char*>(base) + h * half_lines * 128;
    for (int64_t l = w * per + lane; l < l1; l += 32) prefetch_l2(b + l * 128);
  }
}

// The fused greedy choice's key: the value's order key (sampling_math.h: -0 and +0 equal, as the argmax kernel's
// comparison has them) above the complemented column, so that the largest key is the largest value at its lowest
// column. 0 is below every key of a non-NaN value (no candidate).
__device__ __forceinline__ unsigned long long argmax_key(float v, int64_t n) {
  return (static_cast<unsigned long long>(order_key(v)) << 32) | static_cast<unsigned>(~static_cast<unsigned>(n));
}

// The block's best key per row merged into p.argmax_keys; the grid's last block writes the choices (see
// GemvKParams::argmax_out).
template <int R>
__device__ void argmax_epilogue(const unsigned long long (&best)[R], const GemvKParams& p) {
  __shared__ unsigned long long keys[kWarps][R];
  __shared__ bool last;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t = threadIdx.x;
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < R; ++r) keys[warp][r] = best[r];
  }
  __syncthreads();
  if (t < p.T) {
    unsigned long long k = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) k = max(k, keys[w][t]);
    if (k) atomicMax(p.argmax_keys + t, k);
  }
  __threadfence();
  __syncthreads();
  if (t == 0) last = atomicAdd(p.argmax_keys + p.T, 1ull) == gridDim.x - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (t < p.T) {
    const unsigned long long k = atomicExch(p.argmax_keys + t, 0ull);
    p.argmax_out[t] = k ? static_cast<int32_t>(~static_cast<unsigned>(k)) : 0;
  }
  if (t == 0) p.argmax_keys[p.T] = 0;
}

// U: 16-byte weight loads in flight per lane and weight row. GATED: each warp reads the gate row n and the up
// row n + N/2 and writes silu(gate) * up (the SiLU-gated MLP's first half, fused). NORM: x is made by the RMSNorm
// prologue into shared memory (norm_regs: the register form, set by the launch where K allows it). Warps stride
// over the output columns (the grid is one resident wave, so the last wave is not a partial one), prefetching the
// next column's first weights while reducing.
template <class T, class O, int R, int U, bool GATED, bool NORM>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(GemvKParams p, bool norm_regs) {
  constexpr int NR = GATED ? 2 : 1;
  extern __shared__ __align__(16) unsigned char gemv_smem[];
  __shared__ float scratch[kWarps];
  const int lane = threadIdx.x & 31;
  const int64_t n_out = GATED ? p.N / 2 : p.N;
  const int64_t stride = int64_t(gridDim.x) * kWarps;
  const int64_t nv = p.K / 8;  // 16-byte vectors per row
  const T* W = static_cast<const T*>(p.w);
  int64_t n = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int64_t warp_index = n;
  // Stagger: each warp reads its rows from a rotated start (a 128-byte line picked by a hash of the warp index),
  // so that the grid's warps do not all read the same offset of rows K * sizeof(T) bytes apart at once (a
  // power-of-two stride that lands on few memory channels). The sum's order changes with it, deterministically.
  const int64_t lines = nv >= 8 ? nv / 8 : 1;
  const int64_t rot = ((warp_index * 37) % lines) * 8;
  auto at = [&](int64_t v) { return v + rot < nv ? v + rot : v + rot - nv; };  // the rotated vector index
  const uint4* w[NR];
  uint4 wv[NR][U];
  auto start_row = [&](int64_t row) {  // row pointers and the first U loads of each
#pragma unroll
    for (int j = 0; j < NR; ++j) {
      w[j] = reinterpret_cast<const uint4*>(W + (row < n_out ? row + j * n_out : 0) * p.K);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t v = lane + int64_t(u) * 32;
        wv[j][u] = row < n_out && v < nv ? ld_stream(w[j] + at(v)) : make_uint4(0, 0, 0, 0);
      }
    }
  };
  start_row(n);  // the weights do not depend on earlier kernels: stream them before the dependency wait
  if (p.l2_prefetch_bytes > 0) {
    // This warp's share of the L2 budget, in 128-byte lines, taken from its columns in the order it reads them.
    const int64_t row_lines = p.K * int64_t(sizeof(T)) / 128;
    int64_t lines = p.l2_prefetch_bytes / 128 / (int64_t(gridDim.x) * kWarps);
    for (int64_t c = n; c < n_out && lines > 0; c += stride) {
#pragma unroll
      for (int j = 0; j < NR; ++j) {
        const char* row = reinterpret_cast<const char*>(W + (c + j * n_out) * p.K);
        const int64_t take = lines < row_lines ? lines : row_lines;
        for (int64_t l = lane; l < take; l += 32) prefetch_l2(row + l * 128);
        lines -= take;
      }
    }
  }
  if (p.l2_next && p.l2_prefetch_bytes > 0) {  // what the own weights left of the budget: the next weights
    const int64_t halves = p.l2_next_gated ? 2 : 1, budget = p.l2_prefetch_bytes / 128;
    const int64_t own = min64(budget, n_out * int64_t(NR) * (p.K * int64_t(sizeof(T)) / 128));
    prefetch_slice(p.l2_next, p.l2_next_bytes / 128 / halves, halves, (budget - own) / halves, warp_index,
                   int64_t(gridDim.x) * kWarps, lane);
  }
  const uint4* normw = reinterpret_cast<const uint4*>(p.norm_weight);
  // Register prologue (norm_regs: K <= kNormVecs * 128 * 8 and the shared memory allows it, set by the launch):
  // the norm weight is copied into shared memory (after the T x rows) before the dependency wait, and each
  // residual row is read once into registers, so the wait is followed by one load round, not three. Otherwise
  // the loop below reads the residual row twice and the norm weight from global memory.
  if constexpr (NORM) {
    if (norm_regs) {
      uint4* gsm = reinterpret_cast<uint4*>(gemv_smem) + p.T * nv;  // [K] the norm weight
#pragma unroll
      for (int i = 0; i < kNormVecs; ++i) {
        const int64_t v = threadIdx.x + int64_t(i) * kWarps * 32;
        if (v < nv) cp_async16(gsm + v, normw + v, true);
      }
      cp_async_commit();
    }
  }
  pdl_wait();
  pdl_launch_dependents();  // the next kernel launches now and prefetches its weights in this grid's tail
  const uint4* xs;  // x rows, 16-byte vectors: global, or shared memory after the norm prologue
  if constexpr (NORM) {
    uint4* xsm = reinterpret_cast<uint4*>(gemv_smem);  // [T, K]
    const uint4* res = reinterpret_cast<const uint4*>(p.norm_residual);
    uint4* x_out = reinterpret_cast<uint4*>(const_cast<void*>(p.x));  // the norm's output (block 0 writes it)
    for (int r = 0; r < int(p.T); ++r) {
      if (norm_regs) {  // the same sums in the same order as the loop below: the same bits
        uint4 rv[kNormVecs];
        float ss = 0.f;
#pragma unroll
        for (int i = 0; i < kNormVecs; ++i) {
          const int64_t v = threadIdx.x + int64_t(i) * kWarps * 32;
          rv[i] = v < nv ? res[r * nv + v] : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int i = 0; i < kNormVecs; ++i) {
          float f[8];
          unpack8<T>(rv[i], f);
#pragma unroll
          for (int j = 0; j < 8; ++j) ss += f[j] * f[j];
        }
        if (r == 0) cp_async_wait<0>();  // this thread's norm weight copies (it reads only those, after the
                                         // block sum's barrier)
        const float inv = rsqrtf(block_sum_f(ss, scratch) / float(p.K) + p.norm_eps);
#pragma unroll
        for (int i = 0; i < kNormVecs; ++i) {
          const int64_t v = threadIdx.x + int64_t(i) * kWarps * 32;
          if (v >= nv) continue;
          float f[8], g[8];
          unpack8<T>(rv[i], f);
          unpack8<T>(reinterpret_cast<const uint4*>(gemv_smem)[p.T * nv + v], g);
#pragma unroll
          for (int j = 0; j < 8; ++j) f[j] = f[j] * inv * g[j];
          const uint4 o = pack8<T>(f);
          xsm[r * nv + v] = o;
          if (blockIdx.x == 0) x_out[r * nv + v] = o;
        }
        continue;
      }
      float ss = 0.f;
      for (int64_t v = threadIdx.x; v < nv; v += blockDim.x) {
        float f[8];
        unpack8<T>(res[r * nv + v], f);
#pragma unroll
        for (int i = 0; i < 8; ++i) ss += f[i] * f[i];
      }
      const float inv = rsqrtf(block_sum_f(ss, scratch) / float(p.K) + p.norm_eps);
      for (int64_t v = threadIdx.x; v < nv; v += blockDim.x) {
        float f[8], g[8];
        unpack8<T>(res[r * nv + v], f);
        unpack8<T>(normw[v], g);
#pragma unroll
        for (int i = 0; i < 8; ++i) f[i] = f[i] * inv * g[i];
        const uint4 o = pack8<T>(f);
        xsm[r * nv + v] = o;
        if (blockIdx.x == 0) x_out[r * nv + v] = o;
      }
    }
    __syncthreads();
    xs = xsm;
  } else {
    xs = reinterpret_cast<const uint4*>(p.x);
  }
  constexpr bool kArgmax = std::is_same_v<O, float>;  // a fused greedy choice is possible (p.argmax_out)
  unsigned long long best[R];                          // lane 0: the best key per row so far
#pragma unroll
  for (int r = 0; r < R; ++r) best[r] = 0;
  for (; n < n_out; n += stride) {
    float res_in[R];  // the residual epilogue's inputs, loaded now (off the warp's tail)
    if (p.residual && lane == 0) {
#pragma unroll
      for (int r = 0; r < R; ++r)
        res_in[r] = r < p.T ? to_f(static_cast<const T*>(p.residual)[int64_t(r) * n_out + n]) : 0.f;
    }
    float acc[NR][R];
#pragma unroll
    for (int j = 0; j < NR; ++j)
#pragma unroll
      for (int r = 0; r < R; ++r) acc[j][r] = 0.f;
    for (int64_t base = 0; base < nv; base += 32 * U) {
      uint4 next[NR][U];
#pragma unroll
      for (int j = 0; j < NR; ++j)
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int64_t v = base + 32 * U + lane + int64_t(u) * 32;
          next[j][u] = v < nv ? ld_stream(w[j] + at(v)) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t v = base + lane + int64_t(u) * 32;
        if (v < nv) {
          float wf[NR][8];
#pragma unroll
          for (int j = 0; j < NR; ++j) unpack8<T>(wv[j][u], wf[j]);
#pragma unroll
          for (int r = 0; r < R; ++r) {
            if (r < p.T) {
              uint4 xv;
              if constexpr (NORM) {
                xv = xs[r * nv + at(v)];
              } else {
                xv = __ldg(xs + r * nv + at(v));
              }
              float xf[8];
              unpack8<T>(xv, xf);
#pragma unroll
              for (int j = 0; j < NR; ++j)
#pragma unroll
                for (int i = 0; i < 8; ++i) acc[j][r] = fmaf(wf[j][i], xf[i], acc[j][r]);
            }
          }
        }
      }
#pragma unroll
      for (int j = 0; j < NR; ++j)
#pragma unroll
        for (int u = 0; u < U; ++u) wv[j][u] = next[j][u];
    }
    start_row(n + stride);  // in flight while this column is reduced and written
#pragma unroll
    for (int j = 0; j < NR; ++j)
#pragma unroll
      for (int r = 0; r < R; ++r) acc[j][r] = warp_sum(acc[j][r]);
    if (lane == 0) {
      const T* bias = static_cast<const T*>(p.bias);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (r >= p.T) continue;
        float v = acc[0][r] + (bias ? to_f(bias[n]) : 0.f);
        if constexpr (GATED) {
          const float g = round_to<T>(v), u = round_to<T>(acc[1][r] + (bias ? to_f(bias[n + n_out]) : 0.f));
          if (p.gate_up) {  // what the unfused linear writes
            static_cast<T*>(p.gate_up)[int64_t(r) * p.N + n] = from_f<T>(g);
            static_cast<T*>(p.gate_up)[int64_t(r) * p.N + n_out + n] = from_f<T>(u);
          }
          v = g / (1.0f + __expf(-g)) * u;  // as activation() on the rounded gate_up output
        }
        static_cast<O*>(p.out)[int64_t(r) * n_out + n] = from_f<O>(v);
        if constexpr (kArgmax) {
          if (p.argmax_out && v == v) best[r] = max(best[r], argmax_key(v, n));
        }
        if (p.residual)  // residual += out, as the next norm's add would do
          static_cast<T*>(p.residual)[int64_t(r) * n_out + n] = from_f<T>(res_in[r] + round_to<O>(v));
      }
    }
  }
  if constexpr (kArgmax) {
    if (p.argmax_out) argmax_epilogue<R>(best, p);
  }
}

// The grid: a block per kWarps columns, capped at what fits at once (at most kBlocksPerSm blocks per SM), so that
// no partial second wave runs.
template <auto Kernel>
void launch_grid(const GemvKParams& p, bool norm_regs, int sms, size_t smem, cudaStream_t s) {
  const int64_t n_out = p.silu_gated ? p.N / 2 : p.N;
  thread_local std::map<size_t, int> fits;  // by dynamic shared memory
  auto it = fits.find(smem);
  if (it == fits.end()) {
    int fit = 0;
    KILN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, Kernel, kWarps * 32, smem));
    it = fits.emplace(smem, std::clamp(fit, 1, kBlocksPerSm)).first;
  }
  const int64_t need = ceil_div(n_out, kWarps), cap = int64_t(it->second) * sms;
  // Balanced: as many columns for every warp (the rounds the cap needs, spread over fewer blocks), instead of a
  // last round that only some warps run (the 8B down projection: 4096 rows on 3168 warps). H100: 8B decode +1.6%.
  const int64_t blocks = ceil_div(need, ceil_div(need, cap));
  const dim3 grid{unsigned(blocks)};
  launch_pdl(Kernel, grid, dim3(kWarps * 32), smem, s, p, norm_regs);
}

template <class T, class O, int U, bool GATED, bool NORM>
void launch_rows(const GemvKParams& p, cudaStream_t s) {
  static const int sms = [] {
    int d = 0, n = 0;
    KILN_CUDA_CHECK(cudaGetDevice(&d));
    KILN_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, d));
    return n;
  }();
  // The register prologue where K and the shared memory ([T + 1, K]) allow it.
  const bool norm_regs = NORM && p.K <= int64_t(kNormVecs) * kWarps * 32 * 8 &&
                         size_t((p.T + 1) * p.K) * sizeof(T) <= kGemvNormSmem;
  const size_t smem = NORM ? size_t((p.T + (norm_regs ? 1 : 0)) * p.K) * sizeof(T) : 0;
  if (p.T == 1) {
    launch_grid<gemv_kernel<T, O, 1, U, GATED, NORM>>(p, norm_regs, sms, smem, s);
  } else if (p.T == 2) {
    launch_grid<gemv_kernel<T, O, 2, U, GATED, NORM>>(p, norm_regs, sms, smem, s);
  } else if (p.T <= 4) {
    launch_grid<gemv_kernel<T, O, 4, U, GATED, NORM>>(p, norm_regs, sms, smem, s);
  } else {
    launch_grid<gemv_kernel<T, O, 8, U, GATED, NORM>>(p, norm_regs, sms, smem, s);
  }
}

template <class T, class O, bool GATED, bool NORM>
void launch_unroll(const GemvKParams& p, cudaStream_t s) {
  if (p.unroll == 8) {
    launch_rows<T, O, 8, GATED, NORM>(p, s);
  } else {
    launch_rows<T, O, 4, GATED, NORM>(p, s);
  }
}

}  // namespace

void GemvKParams::check() const {
  if (!x || !w || !out) throw_error("gemv: null pointer");
  if (!supports(T, K) || N <= 0) throw_error("gemv: needs 1..8 rows and K a multiple of 8");
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(w)) % 16) throw_error("gemv: x and w must be 16-byte aligned");
  if (unroll != 4 && unroll != 8) throw_error("gemv: unroll must be 4 or 8");
  if (silu_gated && (N % 2 || out_dt != dt)) throw_error("gemv: the SiLU-gated form needs an even N and a compute-dtype output");
  if (norm_residual && (!norm_weight || size_t(T * K) * dtype_size(dt) > kGemvNormSmem))
    throw_error("gemv: the norm prologue needs a weight and T * K small enough");
  if (residual && (silu_gated || out_dt != dt || norm_residual))
    throw_error("gemv: the residual epilogue needs a plain compute-dtype output and no norm prologue");
  if (argmax_out && (out_dt != DType::F32 || !argmax_keys || silu_gated || residual))
    throw_error("gemv: the fused greedy choice needs a float32 output, its keys, no SiLU gate, no residual add");
}

void invoke(const GemvKParams& p, cudaStream_t s) {
  p.check();
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const bool norm = p.norm_residual != nullptr;
    if (p.silu_gated) {
      norm ? launch_unroll<T, T, true, true>(p, s) : launch_unroll<T, T, true, false>(p, s);
    } else if (p.out_dt == DType::F32) {
      norm ? launch_unroll<T, float, false, true>(p, s) : launch_unroll<T, float, false, false>(p, s);
    } else if (p.out_dt == p.dt) {
      norm ? launch_unroll<T, T, false, true>(p, s) : launch_unroll<T, T, false, false>(p, s);
    } else {
      throw_error("gemv: output must be float32 or the compute dtype");
    }
  });
}

}  // namespace kiln::cuda
