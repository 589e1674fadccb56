// Fused q/k per-head RMSNorm + RoPE + paged KV-cache write: one block per token, the qkv row staged in shared
// memory as fp32. Same arithmetic as CpuBackend::rope_kv (angles in fp64, cos/sin rounded to fp32).
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kernels.h"

namespace kiln::cuda {

namespace {

template <class T>
__global__ void rope_kv_kernel(RopeKvKParams p) {
  extern __shared__ float sm[];
  const int64_t hd = p.hd, half = hd / 2, nq = p.nh * hd, nk = p.nkv * hd;
  const int64_t row = nq + 2 * nk;
  float* x = sm;         // [row]   the token's q | k | v in fp32
  float* cs = sm + row;  // [hd]    cos[0, half) | sin[0, half)
  const int64_t t = blockIdx.x;
  // Step metadata and the cos/sin table come from host copies, not from kernels: read before the wait.
  const int32_t pos = p.positions[t], slot = p.slots[t];
  const bool table = p.inv_freq && p.cos_sin && pos >= 0 && pos < p.table_len;
  if (table)
    for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) cs[i] = p.cos_sin[int64_t(pos) * hd + i];
  pdl_wait();
  pdl_launch_dependents();  // let the next kernel launch now
  T* qkv = static_cast<T*>(p.qkv) + t * row;
  const bool vec = hd % 8 == 0;  // 16-byte accesses (rows and heads then start on 16-byte boundaries)
  if (vec) {
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < row / 8; i += blockDim.x) {
      float f[8];
      unpack8<T>(reinterpret_cast<const uint4*>(qkv)[i], f);
#pragma unroll
      for (int k = 0; k < 8; ++k) x[i * 8 + k] = f[k];
    }
  } else {
    for (int64_t i = threadIdx.x; i < row; i += blockDim.x) x[i] = to_f(qkv[i]);
  }
  if (p.inv_freq && !table) {  // no precomputed table (the same fp64 values)
    for (int64_t i = threadIdx.x; i < half; i += blockDim.x) rope_cos_sin(pos, p.inv_freq[i], cs[i], cs[half + i]);
  }
  __syncthreads();
  // Per-head RMSNorm of q (heads [0, nh)) and k (heads [nh, nh + nkv)): one warp per head.
  if (p.q_norm || p.k_norm) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int64_t h = warp; h < p.nh + p.nkv; h += nw) {
      const bool is_q = h < p.nh;
      const T* w = static_cast<const T*>(is_q ? p.q_norm : p.k_norm);
      if (!w) continue;
      float* v = x + h * hd;
      float ss = 0.f;
      for (int64_t i = lane; i < hd; i += 32) ss += v[i] * v[i];
      ss = warp_sum(ss);
      const float inv = rsqrtf(ss / float(hd) + p.qk_norm_eps);
      for (int64_t i = lane; i < hd; i += 32) v[i] = to_f(w[i]) * (v[i] * inv);
    }
    __syncthreads();
  }
  if (p.inv_freq) {
    const int64_t pairs = (p.nh + p.nkv) * half;
    for (int64_t j = threadIdx.x; j < pairs; j += blockDim.x) {
      const int64_t h = j / half, i = j % half;
      float* v = x + h * hd;
      const float x0 = v[i], x1 = v[i + half], c = cs[i], sn = cs[half + i];
      v[i] = x0 * c - x1 * sn;
      v[i + half] = x1 * c + x0 * sn;
    }
    __syncthreads();
  }
  const int64_t blk = slot / p.tpb, off = slot % p.tpb;
  T* kb = static_cast<T*>(p.cache) + blk * 2 * p.nkv * p.tpb * hd;  // [nkv, tpb, hd]
  T* vb = kb + p.nkv * p.tpb * hd;
  if (vec) {
    auto load8 = [&](int64_t i) {
      float f[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) f[k] = x[i + k];
      return pack8<T>(f);
    };
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < (nq + nk) / 8; i += blockDim.x)
      reinterpret_cast<uint4*>(qkv)[i] = load8(i * 8);
#pragma unroll 2
    for (int64_t i = threadIdx.x; i < nk / 8; i += blockDim.x) {
      const int64_t h = i * 8 / hd, d = i * 8 % hd;
      *reinterpret_cast<uint4*>(kb + (h * p.tpb + off) * hd + d) = load8(nq + i * 8);
      *reinterpret_cast<uint4*>(vb + (h * p.tpb + off) * hd + d) = load8(nq + nk + i * 8);
    }
  } else {
    for (int64_t i = threadIdx.x; i < nq + nk; i += blockDim.x) qkv[i] = from_f<T>(x[i]);
    for (int64_t i = threadIdx.x; i < nk; i += blockDim.x) {
      const int64_t h = i / hd, d = i % hd;
      kb[(h * p.tpb + off) * hd + d] = from_f<T>(x[nq + i]);
      vb[(h * p.tpb + off) * hd + d] = from_f<T>(x[nq + nk + i]);
    }
  }
}

}  // namespace

size_t RopeKvKParams::smem_bytes() const { return size_t((nh + 2 * nkv) * hd + hd) * sizeof(float); }

void RopeKvKParams::check() const {
  if (!qkv || !positions || !slots || !cache) throw_error("rope_kv: null pointer");
  if (T < 0 || nh <= 0 || nkv <= 0 || hd <= 0 || hd % 2 || tpb <= 0 || num_blocks <= 0)
    throw_error("rope_kv: bad sizes");
  if (smem_bytes() > 200 * 1024) throw_error("rope_kv: (heads + 2 kv heads) x head_dim too large for one block");
}

void invoke(const RopeKvKParams& p, cudaStream_t s) {
  p.check();
  if (p.T == 0) return;
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const size_t smem = p.smem_bytes();
    allow_smem<rope_kv_kernel<T>>(200 * 1024);  // check() bounds smem by this
    launch_pdl(rope_kv_kernel<T>, dim3(unsigned(p.T)), dim3(256), smem, s, p);
  });
}

}  // namespace kiln::cuda
