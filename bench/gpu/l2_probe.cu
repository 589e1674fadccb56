// Probe: how much of a region prefetched into L2 is still there when a kernel reads it 40 us later, by method.
// A decode step's GEMV after the attention prefetches the next weights (up to 64 MB) while the attention runs;
// this measures what each way of prefetching leaves in L2, with the GEMV's own load and prefetch helpers
// (cuda_common.cuh; header only, no kiln library to link):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Isrc -Iinclude bench/gpu/l2_probe.cu -o l2_probe
// Prints one JSON object: the device, then per (method, MB) the median read time of the region (5 trials, L2
// flushed by a 512 MB read before each) and the prefetch kernel's own time.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <vector>

#include "backend/cuda/cuda_common.cuh"

using kiln::cuda::ld_stream;
using kiln::cuda::prefetch_l2;

#define CK(x)                                                                   \
  do {                                                                          \
    cudaError_t e_ = (x);                                                       \
    if (e_ != cudaSuccess) {                                                    \
      std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));             \
      return 1;                                                                 \
    }                                                                           \
  } while (0)

__device__ unsigned sink;

// Reads `bytes` of p: each warp a contiguous slice, 4 16-byte loads in flight per lane (as the GEMV does).
__global__ void read_kernel(const char* p, int64_t bytes) {
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32), w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  const int64_t per = (bytes / 512 + warps - 1) / warps * 512, b0 = w * per, b1 = bytes < b0 + per ? bytes : b0 + per;
  unsigned acc = 0;
  for (int64_t b = b0 + lane * 16; b < b1; b += 4 * 512) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = b + u * 512 < b1 ? ld_stream(p + b + u * 512) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < 4; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x12345678u) sink = acc;
}

// method 1: prefetch.global.L2 per 128-byte line; 2: the same with ::evict_last; 3: cp.async.bulk.prefetch.L2 of
// 4 KB; 4: loads whose values are discarded (8 in flight per lane); 5-7: see below.
__global__ void prefetch_kernel(const char* p, int64_t bytes, int method) {
  const int64_t threads = int64_t(gridDim.x) * blockDim.x, t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (method == 1) {
    for (int64_t b = t * 128; b < bytes; b += threads * 128) prefetch_l2(p + b);
  } else if (method == 2) {
    for (int64_t b = t * 128; b < bytes; b += threads * 128)
      asm volatile("prefetch.global.L2::evict_last [%0];" ::"l"(p + b));
  } else if (method == 3) {
    for (int64_t b = t * 4096; b < bytes; b += threads * 4096)
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p + b), "r"(4096) : "memory");
  } else if (method == 5 || method == 6) {  // cp.async of 16 bytes into one shared slot per thread (never read)
    __shared__ __align__(16) char slot[128 * 16];
    const unsigned dst = unsigned(__cvta_generic_to_shared(slot + threadIdx.x % 128 * 16));
    const int64_t step = method == 5 ? 16 : 256;
    for (int64_t b = t * step; b < bytes; b += threads * step) {
      if (method == 5) {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(p + b) : "memory");
      } else {
        asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;" ::"r"(dst), "l"(p + b) : "memory");
      }
    }
    asm volatile("cp.async.wait_all;" ::: "memory");
  } else if (method == 7) {  // 16-byte loads with the 256-byte L2 prefetch size, one per 256 bytes, discarded
    unsigned acc = 0;
    for (int64_t b = t * 256; b < bytes; b += threads * 256 * 8) {
      uint4 v[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const int64_t a = b + u * threads * 256;
        if (a < bytes) {
          asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
                       : "=r"(v[u].x), "=r"(v[u].y), "=r"(v[u].z), "=r"(v[u].w)
                       : "l"(p + a));
        } else {
          v[u] = make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int u = 0; u < 8; ++u) acc ^= v[u].x;
    }
    if (acc == 0x12345678u) sink = acc;
  } else if (method == 4) {
    unsigned acc = 0;
    for (int64_t b = t * 16; b < bytes; b += threads * 16 * 8) {
      uint4 v[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) v[u] = b + u * threads * 16 < bytes ? ld_stream(p + b + u * threads * 16) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int u = 0; u < 8; ++u) acc ^= v[u].x;
    }
    if (acc == 0x12345678u) sink = acc;
  }
}

__global__ void spin_kernel(uint64_t ns) {
  uint64_t t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (t - t0 < ns);
}

int main() {
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  const int64_t region = int64_t(64) << 20, flush = int64_t(512) << 20;
  char *w = nullptr, *f = nullptr;
  CK(cudaMalloc(&w, region));
  CK(cudaMalloc(&f, flush));
  CK(cudaMemset(w, 1, region));
  CK(cudaMemset(f, 2, flush));
  cudaEvent_t e0, e1, e2;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  CK(cudaEventCreate(&e2));
  const int sms = prop.multiProcessorCount, grid = sms * 4;
  std::printf("{\"device\": \"%s\", \"l2_bytes\": %d, \"sms\": %d, \"runs\": [\n", prop.name, prop.l2CacheSize, sms);
  const char* names[] = {"none", "prefetch.global.L2", "prefetch.global.L2::evict_last", "cp.async.bulk.prefetch.L2",
                         "discarded loads",
                         "cp.async 16 B per 16 B", "cp.async 16 B + L2::256B per 256 B", "loads + L2::256B per 256 B"};
  bool first = true;
  for (int mb : {8, 16, 24, 32, 48, 64}) {
    const int64_t bytes = int64_t(mb) << 20;
    for (int method = 0; method <= 7; ++method) {
      std::vector<float> rd, pf;
      for (int trial = 0; trial < 6; ++trial) {
        read_kernel<<<grid, 128>>>(f, flush);  // evicts the region
        CK(cudaEventRecord(e0));
        prefetch_kernel<<<grid, 128>>>(w, bytes, method);
        CK(cudaEventRecord(e1));
        spin_kernel<<<1, 32>>>(40000);
        CK(cudaEventRecord(e2));
        read_kernel<<<grid, 128>>>(w, bytes);
        cudaEvent_t e3;
        CK(cudaEventCreate(&e3));
        CK(cudaEventRecord(e3));
        CK(cudaEventSynchronize(e3));
        float a = 0, b = 0;
        CK(cudaEventElapsedTime(&a, e0, e1));
        CK(cudaEventElapsedTime(&b, e2, e3));
        CK(cudaEventDestroy(e3));
        if (trial > 0) {
          pf.push_back(a * 1000.f);
          rd.push_back(b * 1000.f);
        }
      }
      std::sort(rd.begin(), rd.end());
      std::sort(pf.begin(), pf.end());
      const float r = rd[rd.size() / 2];
      std::printf("%s  {\"method\": \"%s\", \"MB\": %d, \"read_us\": %.2f, \"read_GBs\": %.0f, \"prefetch_kernel_us\": %.2f}",
                  first ? "" : ",\n", names[method], mb, r, double(bytes) / (r * 1e-6) / 1e9, pf[pf.size() / 2]);
      first = false;
    }
  }
  std::printf("\n]}\n");
  CK(cudaGetLastError());
  return 0;
}
