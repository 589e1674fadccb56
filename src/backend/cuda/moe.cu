// Mixture-of-experts on the device: routing (softmax, stable top-k, renormalization, grouping of tokens by
// expert), a grouped GEMM over the experts' segments that reads the token rows through the grouping (no copy),
// and a deterministic combine. Nothing crosses to the host, so MoE steps can be recorded in CUDA graphs.
#include <mma.h>

#include <cfloat>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kernels.h"

namespace kiln::cuda {

namespace {

// One warp per token: top-k by repeated arg-max (lowest expert on ties), weights = softmax over the chosen
// (the full softmax's normalizer cancels in the renormalization; exponentials in fp64 as on the cpu).
__global__ void moe_topk_kernel(MoeRouteKParams p) {
  pdl_wait();
  const int lane = threadIdx.x & 31;
  const int64_t t = int64_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (t >= p.T) return;
  const float* l = p.logits + t * p.E;
  double chosen_exp[16];
  int32_t chosen[16];
  float mx = -FLT_MAX;
  for (int64_t e = lane; e < p.E; e += 32) mx = fmaxf(mx, l[e]);
  mx = warp_max(mx);
  for (int k = 0; k < p.top_k; ++k) {
    float best = -FLT_MAX;
    int32_t bi = INT32_MAX;
    for (int64_t e = lane; e < p.E; e += 32) {
      bool used = false;
      for (int j = 0; j < k; ++j) used |= chosen[j] == e;
      if (!used && (l[e] > best || (l[e] == best && e < bi))) {
        best = l[e];
        bi = int32_t(e);
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ob > best || (ob == best && oi < bi)) {
        best = ob;
        bi = oi;
      }
    }
    chosen[k] = bi;
    chosen_exp[k] = exp(double(best) - double(mx));
  }
  if (lane == 0) {
    double sum = 0;
    for (int k = 0; k < p.top_k; ++k) sum += chosen_exp[k];
    for (int k = 0; k < p.top_k; ++k) {
      p.topk_expert[t * p.top_k + k] = chosen[k];
      p.topk_weight[t * p.top_k + k] = float(chosen_exp[k] / sum);
    }
  }
}

// One block: counts per expert, exclusive scan into offsets, then slots in (token, choice) order.
__global__ void moe_group_kernel(MoeRouteKParams p) {
  extern __shared__ int32_t gsm[];
  int32_t* count = gsm;               // [E]
  int32_t* base = count + p.E;        // [E] running slot per expert
  int32_t* wcnt = base + p.E;         // [32 warps][E]
  pdl_wait();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t n = p.T * p.top_k;
  for (int64_t e = tid; e < p.E; e += blockDim.x) count[e] = 0;
  __syncthreads();
  for (int64_t j = tid; j < n; j += blockDim.x) atomicAdd(&count[p.topk_expert[j]], 1);
  __syncthreads();
  if (tid == 0) {
    int32_t run = 0;
    for (int64_t e = 0; e < p.E; ++e) {
      p.offsets[e] = run;
      base[e] = run;
      run += count[e];
    }
    p.offsets[p.E] = run;
  }
  __syncthreads();
  for (int64_t c = 0; c < n; c += blockDim.x) {
    for (int64_t i = tid; i < 32 * p.E; i += blockDim.x) wcnt[i] = 0;
    __syncthreads();
    const int64_t j = c + tid;
    const int32_t e = j < n ? p.topk_expert[j] : -1;
    const unsigned same = __match_any_sync(0xffffffffu, e);
    const int rank = __popc(same & ((1u << lane) - 1));
    if (e >= 0 && rank == 0) wcnt[warp * p.E + e] = __popc(same);
    __syncthreads();
    for (int64_t ee = tid; ee < p.E; ee += blockDim.x) {  // prefix over warps, per expert
      int32_t run = base[ee];
      for (int w = 0; w < int(blockDim.x / 32); ++w) {
        const int32_t v = wcnt[w * p.E + ee];
        wcnt[w * p.E + ee] = run;
        run += v;
      }
      base[ee] = run;
    }
    __syncthreads();
    if (e >= 0) {
      const int32_t slot = wcnt[warp * p.E + e] + rank;
      p.slot_token[slot] = int32_t(j / p.top_k);
      p.token_slot[j] = slot;
    }
    __syncthreads();
  }
}

constexpr int GBM = 64, GBN = 64, GBK = 32, GLD = GBK + 8;

template <class T, class O>
__global__ void __launch_bounds__(128) grouped_gemm_kernel(GroupedGemmKParams p) {
  using namespace nvcuda;
  __shared__ __align__(32) T As[GBM * GLD];
  __shared__ __align__(32) T Bs[GBN * GLD];
  __shared__ __align__(32) float Cs[GBM * (GBN + 4)];
  pdl_wait();
  const int e = blockIdx.z, m0 = blockIdx.y * GBM, n0 = blockIdx.x * GBN;
  const int seg = p.offsets[e], cnt = p.offsets[e + 1] - seg;
  if (m0 >= cnt) return;
  const int tid = threadIdx.x, warp = tid >> 5, wm = warp >> 1, wn = warp & 1;
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.w) + int64_t(e) * p.N * p.K;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);
  for (int64_t k0 = 0; k0 < p.K; k0 += GBK) {
    for (int i = tid; i < GBM * (GBK / 8); i += blockDim.x) {  // A: gathered rows
      const int r = i / (GBK / 8), v = i % (GBK / 8);
      const int64_t k = k0 + v * 8;
      uint4 val = make_uint4(0, 0, 0, 0);
      if (m0 + r < cnt && k < p.K) {
        const int64_t slot = seg + m0 + r;
        const int64_t src = p.gather ? p.gather[slot] : slot;
        val = *reinterpret_cast<const uint4*>(x + src * p.K + k);
      }
      *reinterpret_cast<uint4*>(As + r * GLD + v * 8) = val;
    }
    for (int i = tid; i < GBN * (GBK / 8); i += blockDim.x) {  // B: weight rows n, as W^T
      const int r = i / (GBK / 8), v = i % (GBK / 8);
      const int64_t k = k0 + v * 8;
      uint4 val = make_uint4(0, 0, 0, 0);
      if (n0 + r < p.N && k < p.K) val = *reinterpret_cast<const uint4*>(w + int64_t(n0 + r) * p.K + k);
      *reinterpret_cast<uint4*>(Bs + r * GLD + v * 8) = val;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < GBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> af[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bf[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(af[i], As + (wm * 32 + i * 16) * GLD + kk, GLD);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(bf[j], Bs + (wn * 32 + j * 16) * GLD + kk, GLD);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], af[i], bf[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * (GBN + 4) + wn * 32 + j * 16, acc[i][j], GBN + 4,
                              wmma::mem_row_major);
  __syncthreads();
  O* out = static_cast<O*>(p.out);
  for (int i = tid; i < GBM * GBN; i += blockDim.x) {
    const int r = i / GBN, c = i % GBN;
    if (m0 + r < cnt && n0 + c < p.N) out[int64_t(seg + m0 + r) * p.N + n0 + c] = from_f<O>(Cs[r * (GBN + 4) + c]);
  }
}

template <class T>
__global__ void moe_combine_kernel(MoeCombineKParams p) {
  pdl_wait();
  const int64_t t = blockIdx.x;
  for (int64_t h = threadIdx.x; h < p.H; h += blockDim.x) {
    float v = 0.f;
    for (int64_t i = 0; i < p.top_k; ++i)
      v += p.topk_weight[t * p.top_k + i] * p.y[int64_t(p.token_slot[t * p.top_k + i]) * p.H + h];
    static_cast<T*>(p.out)[t * p.H + h] = from_f<T>(v);
  }
}

}  // namespace

void MoeRouteKParams::check() const {
  if (!logits || !topk_weight || !topk_expert || !offsets || !slot_token || !token_slot) throw_error("moe route: null pointer");
  if (E <= 0 || top_k <= 0 || top_k > E || top_k > 16) throw_error("moe route: need 1 <= top_k <= min(16, experts)");
  if (E > 1024) throw_error("moe route: at most 1024 experts");
}

void invoke(const MoeRouteKParams& p, cudaStream_t s) {
  p.check();
  if (p.T == 0) return;
  launch_pdl(moe_topk_kernel, dim3(unsigned(ceil_div(p.T, 4))), dim3(128), 0, s, p);
  const size_t smem = size_t(2 * p.E + 32 * p.E) * sizeof(int32_t);
  allow_smem<moe_group_kernel>(size_t(34 * 1024) * sizeof(int32_t));  // E <= 1024 (check())
  launch_pdl(moe_group_kernel, dim3(1), dim3(1024), smem, s, p);
}

void GroupedGemmKParams::check() const {
  if (!x || !w || !offsets || !out) throw_error("grouped gemm: null pointer");
  if (E <= 0 || N <= 0 || K <= 0 || K % 8) throw_error("grouped gemm: K must be a positive multiple of 8");
  if (max_group_rows < 0 || max_group_rows > M) throw_error("grouped gemm: bad max_group_rows");
}

void invoke(const GroupedGemmKParams& p, cudaStream_t s) {
  p.check();
  if (p.M == 0) return;
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const dim3 grid(unsigned(ceil_div(p.N, GBN)), unsigned(ceil_div(p.max_group_rows, GBM)), unsigned(p.E));
    if (p.out_dt == DType::F32) {
      launch_pdl(grouped_gemm_kernel<T, float>, grid, dim3(128), 0, s, p);
    } else {
      launch_pdl(grouped_gemm_kernel<T, T>, grid, dim3(128), 0, s, p);
    }
  });
}

void MoeCombineKParams::check() const {
  if (!y || !topk_weight || !token_slot || !out) throw_error("moe combine: null pointer");
}

void invoke(const MoeCombineKParams& p, cudaStream_t s) {
  p.check();
  if (p.T == 0) return;
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_pdl(moe_combine_kernel<T>, dim3(unsigned(p.T)), dim3(256), 0, s, p);
  });
}

}  // namespace kiln::cuda
