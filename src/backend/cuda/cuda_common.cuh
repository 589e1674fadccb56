// Device-side helpers of the cuda backend's kernels (.cu only): dtype conversions, 16-byte vectors, warp and
// block reductions, and launches with programmatic dependent launch (PDL).
#pragma once
#include <cuda_runtime.h>

#include "backend/cuda/cuda_check.h"

namespace kiln::cuda {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// Rounds through T (what storing in T and reading back gives).
template <class T>
__device__ __forceinline__ float round_to(float x) { return to_f(from_f<T>(x)); }

// 8 x 16-bit values in one 16-byte vector.
template <class T>
__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8]) {
  const T* h = reinterpret_cast<const T*>(&v);
#pragma unroll
  for (int i = 0; i < 8; ++i) f[i] = to_f(h[i]);
}
template <class T>
__device__ __forceinline__ uint4 pack8(const float (&f)[8]) {
  uint4 v;
  T* h = reinterpret_cast<T*>(&v);
#pragma unroll
  for (int i = 0; i < 8; ++i) h[i] = from_f<T>(f[i]);
  return v;
}

// Two floats as one 32-bit pair of T (the lower column in the low half), as mma fragments hold them.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

// Streaming 16-byte load (read once: no L1 allocation).
__device__ __forceinline__ uint4 ld_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Position -> (block, offset) in a paged KV cache of tpb tokens per block, in 32-bit arithmetic: a shift and a
// mask when tpb is a power of two (the usual case), else division. (A 64-bit division per key costs more issue
// slots than the attention arithmetic around it.)
struct PageDiv {
  int tpb, shift;  // shift < 0: tpb is not a power of two
  __device__ __forceinline__ explicit PageDiv(int64_t t) : tpb(int(t)), shift(-1) {
    if ((t & (t - 1)) == 0)
      for (shift = 0; (int64_t(1) << shift) < t;) ++shift;
  }
  __device__ __forceinline__ int block(int pos) const { return shift >= 0 ? pos >> shift : pos / tpb; }
  __device__ __forceinline__ int offset(int pos) const { return shift >= 0 ? pos & (tpb - 1) : pos % tpb; }
};

// RoPE's cos and sin at position pos and inverse frequency f: the angle in fp64, rounded to fp32. The one
// definition behind the cos | sin table and the kernels' fallback past its end.
__device__ __forceinline__ void rope_cos_sin(int64_t pos, float f, float& c, float& s) {
  double sd, cd;
  sincos(double(pos) * double(f), &sd, &cd);
  c = float(cd);
  s = float(sd);
}

// Asks L2 to fetch the 128-byte line holding p (no register is written; the load that follows hits L2).
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

// Programmatic dependent launch: a kernel launched with launch_pdl may start while the previous kernel in the
// stream finishes; it must call pdl_wait() before reading anything an earlier kernel wrote.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }

// Lets Kernel use up to `bytes` of dynamic shared memory; once per kernel, at its first launch (never inside a
// graph recording: ModelRunner runs each batch size once directly before recording it).
template <auto Kernel>
void allow_smem(size_t bytes) {
  static const bool done = [&] {
    KILN_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    return true;
  }();
  (void)done;
}

template <class... KArgs, class... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  KILN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
template <class T>
__device__ T block_sum(T v, T* scratch /* [32] shared */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < nw ? scratch[lane] : T(0);
  return warp_sum(r);
}

}  // namespace kiln::cuda
