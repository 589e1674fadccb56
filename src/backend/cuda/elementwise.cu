// Row-wise and element-wise kernels: embedding, norms fused with the residual add, activations, row gather,
// argmax, random weights, bias add, dtype conversion (each mirrors the cpu backend's loop of the same name), and
// batched uploads.
#include <algorithm>
#include <cfloat>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kernels.h"

namespace kiln::cuda {

namespace {

constexpr int kUploadBlocks = 8;

// Grid-strided 4-byte words over every item (upload_many: the sources are mapped host memory, reads cross PCIe;
// download_async: the destination is). Each thread finds its word's item from the running sizes, so its loads are
// independent: one PCIe round trip, not one per item.
__global__ void upload_kernel(UploadKParams p) {
  int64_t total = 0;
  for (int i = 0; i < p.n; ++i) total += p.bytes[i] / 4;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t w = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; w < total; w += stride) {
    int i = 0;
    int64_t local = w;
    while (local >= p.bytes[i] / 4) local -= p.bytes[i++] / 4;
    static_cast<uint32_t*>(p.dst[i])[local] = static_cast<const uint32_t*>(p.src[i])[local];
  }
}

void need(bool ok, const char* what) {
  if (!ok) throw_error(std::string("cuda kernel params: ") + what);
}

// ---- embedding ----
template <class T>
__global__ void embedding_kernel(EmbeddingKParams p) {
  pdl_wait();
  pdl_launch_dependents();  // small kernel: let the next one launch (and prefetch weights) now
  const int64_t t = blockIdx.x;
  const int32_t id = p.ids[t];
  const bool id_ok = id >= 0 && id < p.V;
  int32_t pos = 0;
  bool pos_ok = true;
  if (p.pos_table) {
    pos = p.positions[t];
    pos_ok = pos >= 0 && pos < p.P;
  }
  if (threadIdx.x == 0 && (!id_ok || !pos_ok)) *reinterpret_cast<volatile int*>(p.error) = id_ok ? 2 : 1;
  const T* row = static_cast<const T*>(p.table) + int64_t(id_ok ? id : 0) * p.H;
  const T* prow = p.pos_table ? static_cast<const T*>(p.pos_table) + int64_t(pos_ok ? pos : 0) * p.H : nullptr;
  T* o = static_cast<T*>(p.out) + t * p.H;
  for (int64_t h = threadIdx.x; h < p.H; h += blockDim.x) {
    float v = id_ok ? to_f(row[h]) : 0.f;
    if (prow) v = pos_ok ? v + to_f(prow[h]) : 0.f;
    o[h] = from_f<T>(v);
  }
}

// ---- norm (+ residual add) ----
// One block per row. Pass 1: residual += add (stored rounded to T), statistics from the stored values;
// pass 2: out = normalized * weight (+ bias).
template <class T>
__global__ void norm_kernel(NormKParams p) {
  __shared__ float scratch[32];
  pdl_wait();
  pdl_launch_dependents();  // small kernel: let the next one launch (and prefetch weights) now
  const int64_t t = blockIdx.x, H = p.H;
  T* r = static_cast<T*>(p.residual) + t * H;
  const T* a = p.add ? static_cast<const T*>(p.add) + t * H : nullptr;
  float sum = 0.f, sumsq = 0.f;
  for (int64_t h = threadIdx.x; h < H; h += blockDim.x) {
    float v = to_f(r[h]);
    if (a) {
      v = round_to<T>(v + to_f(a[h]));
      r[h] = from_f<T>(v);
    }
    sum += v;
    sumsq += v * v;
  }
  float mean = 0.f, inv;
  if (p.layer_norm) {
    mean = block_sum(sum, scratch) / float(H);
    // variance as sum((v - mean)^2): a second pass over the row (cached) for accuracy
    float var = 0.f;
    for (int64_t h = threadIdx.x; h < H; h += blockDim.x) {
      float d = to_f(r[h]) - mean;
      var += d * d;
    }
    var = block_sum(var, scratch) / float(H);
    inv = rsqrtf(var + p.eps);
  } else {
    float ss = block_sum(sumsq, scratch);
    inv = rsqrtf(ss / float(H) + p.eps);
  }
  const T* w = static_cast<const T*>(p.weight);
  const T* b = p.bias ? static_cast<const T*>(p.bias) : nullptr;
  T* o = static_cast<T*>(p.out) + t * H;
  for (int64_t h = threadIdx.x; h < H; h += blockDim.x) {
    float v = (to_f(r[h]) - mean) * inv;
    v = v * to_f(w[h]) + (b ? to_f(b[h]) : 0.f);
    o[h] = from_f<T>(v);
  }
}

// The same with 16-byte vectors, the row in registers (VPT vectors per thread), one pass over memory.
template <class T, int VPT>
__global__ void norm_vec_kernel(NormKParams p) {
  __shared__ float scratch[32];
  pdl_wait();
  pdl_launch_dependents();
  const int64_t t = blockIdx.x, nvec = p.H / 8;
  uint4* r = reinterpret_cast<uint4*>(static_cast<T*>(p.residual) + t * p.H);
  const uint4* a = p.add ? reinterpret_cast<const uint4*>(static_cast<const T*>(p.add) + t * p.H) : nullptr;
  float v[VPT][8];
  float sum = 0.f, sumsq = 0.f;
#pragma unroll
  for (int i = 0; i < VPT; ++i) {
    const int64_t j = threadIdx.x + int64_t(i) * blockDim.x;
    if (j < nvec) {
      unpack8<T>(r[j], v[i]);
      if (a) {
        float av[8];
        unpack8<T>(a[j], av);
#pragma unroll
        for (int k = 0; k < 8; ++k) v[i][k] = round_to<T>(v[i][k] + av[k]);
        r[j] = pack8<T>(v[i]);
      }
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        sum += v[i][k];
        sumsq += v[i][k] * v[i][k];
      }
    }
  }
  float mean = 0.f, inv;
  if (p.layer_norm) {
    mean = block_sum(sum, scratch) / float(p.H);
    float var = 0.f;
#pragma unroll
    for (int i = 0; i < VPT; ++i)
      if (threadIdx.x + int64_t(i) * blockDim.x < nvec)
#pragma unroll
        for (int k = 0; k < 8; ++k) var += (v[i][k] - mean) * (v[i][k] - mean);
    inv = rsqrtf(block_sum(var, scratch) / float(p.H) + p.eps);
  } else {
    inv = rsqrtf(block_sum(sumsq, scratch) / float(p.H) + p.eps);
  }
  const uint4* w = reinterpret_cast<const uint4*>(p.weight);
  const uint4* b = reinterpret_cast<const uint4*>(p.bias);
  uint4* o = reinterpret_cast<uint4*>(static_cast<T*>(p.out) + t * p.H);
#pragma unroll
  for (int i = 0; i < VPT; ++i) {
    const int64_t j = threadIdx.x + int64_t(i) * blockDim.x;
    if (j < nvec) {
      float wv[8], bv[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      unpack8<T>(w[j], wv);
      if (b) unpack8<T>(b[j], bv);
#pragma unroll
      for (int k = 0; k < 8; ++k) v[i][k] = (v[i][k] - mean) * inv * wv[k] + bv[k];
      o[j] = pack8<T>(v[i]);
    }
  }
}

// ---- activations ----
template <class T>
__global__ void act_kernel(ActKParams p) {
  pdl_wait();
  pdl_launch_dependents();  // small kernel: let the next one launch (and prefetch weights) now
  const int64_t n = p.T * p.I;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / p.I, c = i % p.I;
    float v;
    if (p.gelu) {
      const float x = to_f(static_cast<const T*>(p.in)[i]);
      v = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    } else {
      const T* row = static_cast<const T*>(p.in) + t * 2 * p.I;
      const float g = to_f(row[c]), u = to_f(row[p.I + c]);
      v = g / (1.0f + __expf(-g)) * u;
    }
    static_cast<T*>(p.out)[i] = from_f<T>(v);
  }
}

// The same, 8 elements per thread through 16-byte accesses (I % 8 == 0).
template <class T>
__global__ void act_vec_kernel(ActKParams p) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t iv = p.I / 8, n = p.T * iv;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / iv, c = i % iv;
    float v[8];
    if (p.gelu) {
      unpack8<T>(reinterpret_cast<const uint4*>(p.in)[i], v);
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const float x = v[k];
        v[k] = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
      }
    } else {
      const uint4* row = reinterpret_cast<const uint4*>(p.in) + t * 2 * iv;
      float u[8];
      unpack8<T>(row[c], v);
      unpack8<T>(row[iv + c], u);
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] = v[k] / (1.0f + __expf(-v[k])) * u[k];
    }
    reinterpret_cast<uint4*>(p.out)[i] = pack8<T>(v);
  }
}

// ---- gather rows ----
template <class T>
__global__ void gather_kernel(GatherKParams p) {
  pdl_wait();
  pdl_launch_dependents();  // small kernel: let the next one launch (and prefetch weights) now
  const int64_t r = blockIdx.x;
  const int32_t src = p.rows[r];
  const T* x = static_cast<const T*>(p.x) + int64_t(src) * p.H;
  T* o = static_cast<T*>(p.out) + r * p.H;
  for (int64_t h = threadIdx.x; h < p.H; h += blockDim.x) o[h] = x[h];
}

// ---- argmax (lowest index among equal maxima) ----
__device__ __forceinline__ bool better(float a, int32_t ai, float b, int32_t bj) { return a > b || (a == b && ai < bj); }

// Warp-wide (value, index) arg-max; every lane gets the result.
__device__ __forceinline__ void warp_argmax(float& best, int32_t& bi) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ob = __shfl_xor_sync(0xffffffffu, best, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (better(ob, oi, best, bi)) {
      best = ob;
      bi = oi;
    }
  }
}

// Block-wide (value, index) arg-max; every thread gets the result.
__device__ void block_argmax(float& best, int32_t& bi) {
  __shared__ float sv[32];
  __shared__ int32_t si[32];
  warp_argmax(best, bi);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) {
    sv[warp] = best;
    si[warp] = bi;
  }
  __syncthreads();
  best = lane < nw ? sv[lane] : -FLT_MAX;
  bi = lane < nw ? si[lane] : INT32_MAX;
  warp_argmax(best, bi);
}

// Grid (blocks, R): block b of row r scans a contiguous slice; the last to arrive reduces the slices.
__global__ void argmax_kernel(ArgmaxKParams p) {
  __shared__ int is_last;
  pdl_wait();
  pdl_launch_dependents();
  const int64_t r = blockIdx.y, slice = (p.V + gridDim.x - 1) / gridDim.x;
  const int64_t v0 = int64_t(blockIdx.x) * slice, v1 = min(p.V, v0 + slice);
  const float* x = p.logits + r * p.V;
  float best = -FLT_MAX;
  int32_t bi = INT32_MAX;
  for (int64_t v = v0 + threadIdx.x; v < v1; v += blockDim.x) {
    const float y = x[v];
    if (y > best) {  // per thread, indices ascend: strict > keeps the first maximum
      best = y;
      bi = int32_t(v);
    }
  }
  block_argmax(best, bi);
  if (gridDim.x == 1) {
    if (threadIdx.x == 0) p.out[r] = bi == INT32_MAX ? 0 : bi;
    return;
  }
  if (threadIdx.x == 0) {
    p.part_val[r * gridDim.x + blockIdx.x] = best;
    p.part_idx[r * gridDim.x + blockIdx.x] = bi;
    __threadfence();
    const int prev = atomicAdd(p.counters + r, 1);
    is_last = prev == int(gridDim.x) - 1;
    if (is_last) p.counters[r] = 0;
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  best = -FLT_MAX;
  bi = INT32_MAX;
  for (int i = threadIdx.x; i < int(gridDim.x); i += blockDim.x) {
    const float b = __ldcg(p.part_val + r * gridDim.x + i);
    const int32_t j = __ldcg(p.part_idx + r * gridDim.x + i);
    if (better(b, j, best, bi)) {
      best = b;
      bi = j;
    }
  }
  block_argmax(best, bi);
  if (threadIdx.x == 0) p.out[r] = bi == INT32_MAX ? 0 : bi;
}

// ---- random weights: the same function as kiln::random_uniform (backend.h) ----
__device__ __forceinline__ float random_uniform_dev(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return float(int64_t(z >> 40) - (int64_t(1) << 23)) * (1.0f / float(1 << 23));
}

template <class T>
__global__ void random_kernel(RandomKParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.n; i += int64_t(gridDim.x) * blockDim.x)
    static_cast<T*>(p.out)[i] = from_f<T>(p.scale * random_uniform_dev(p.seed, uint64_t(i)));
}

__global__ void rope_table_kernel(RopeTableKParams p) {
  const int64_t half = p.hd / 2, n = p.len * half;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pos = i / half, k = i % half;
    rope_cos_sin(pos, p.inv_freq[k], p.out[pos * p.hd + k], p.out[pos * p.hd + half + k]);
  }
}

template <class T, class O>
__global__ void bias_kernel(BiasKParams p) {
  pdl_wait();
  pdl_launch_dependents();  // small kernel: let the next one launch (and prefetch weights) now
  const int64_t n = p.T * p.N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    O* o = static_cast<O*>(p.out) + i;
    *o = from_f<O>(to_f(*o) + to_f(static_cast<const T*>(p.bias)[i % p.N]));
  }
}

template <class I, class O>
__global__ void convert_kernel(ConvertKParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.n; i += int64_t(gridDim.x) * blockDim.x)
    static_cast<O*>(p.out)[i] = from_f<O>(to_f(static_cast<const I*>(p.in)[i]));
}

int grid_for(int64_t n, int threads) { return int(std::min<int64_t>(ceil_div(std::max<int64_t>(n, 1), threads), 132 * 16)); }

int row_threads(int64_t H) { return H >= 1024 ? 512 : H >= 256 ? 256 : 128; }

}  // namespace

void EmbeddingKParams::check() const {
  need(ids && table && positions && out && error, "embedding: null pointer");
  need(T >= 0 && H > 0 && V > 0, "embedding: bad sizes");
}
void invoke(const EmbeddingKParams& p, cudaStream_t s) {
  p.check();
  if (p.T == 0) return;
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_pdl(embedding_kernel<T>, dim3(unsigned(p.T)), dim3(row_threads(p.H)), 0, s, p);
  });
}

void NormKParams::check() const {
  need(residual && weight && out, "norm: null pointer");
  need(T >= 0 && H > 0, "norm: bad sizes");
}
void UploadKParams::check() const {
  if (n < 0 || n > kUploadItems) throw_error("upload: 0 to " + std::to_string(kUploadItems) + " items");
  for (int i = 0; i < n; ++i)
    if (!src[i] || !dst[i] || bytes[i] < 0 || bytes[i] % 4)
      throw_error("upload: item " + std::to_string(i) + " needs pointers and a multiple of 4 bytes");
}

void invoke(const UploadKParams& p, cudaStream_t s) {
  p.check();
  if (p.n == 0) return;
  int64_t words = 0;
  for (int i = 0; i < p.n; ++i) words += p.bytes[i] / 4;
  upload_kernel<<<unsigned(std::clamp<int64_t>(ceil_div(words, 256), 1, kUploadBlocks)), 256, 0, s>>>(p);
  KILN_CUDA_CHECK(cudaGetLastError());
}

void invoke(const NormKParams& p, cudaStream_t s) {
  p.check();
  if (p.T == 0) return;
  const auto aligned = [](const void* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; };
  const bool vec = p.H % 8 == 0 && p.H <= 32768 && aligned(p.residual) && aligned(p.out) && aligned(p.weight) &&
                   (!p.add || aligned(p.add)) && (!p.bias || aligned(p.bias));
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (!vec) {
      launch_pdl(norm_kernel<T>, dim3(unsigned(p.T)), dim3(row_threads(p.H)), 0, s, p);
      return;
    }
    const int64_t nvec = p.H / 8;
    const int vpt = nvec <= 1024 ? 1 : nvec <= 2048 ? 2 : 4;
    const unsigned threads = unsigned(std::max<int64_t>(32, (ceil_div(nvec, vpt) + 31) / 32 * 32));
    if (vpt == 1) {
      launch_pdl(norm_vec_kernel<T, 1>, dim3(unsigned(p.T)), dim3(threads), 0, s, p);
    } else if (vpt == 2) {
      launch_pdl(norm_vec_kernel<T, 2>, dim3(unsigned(p.T)), dim3(threads), 0, s, p);
    } else {
      launch_pdl(norm_vec_kernel<T, 4>, dim3(unsigned(p.T)), dim3(threads), 0, s, p);
    }
  });
}

void ActKParams::check() const {
  need(in && out, "activation: null pointer");
  need(T >= 0 && I > 0, "activation: bad sizes");
}
void invoke(const ActKParams& p, cudaStream_t s) {
  p.check();
  if (p.T == 0) return;
  const bool vec = p.I % 8 == 0 && (reinterpret_cast<uintptr_t>(p.in) | reinterpret_cast<uintptr_t>(p.out)) % 16 == 0;
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (vec) {
      launch_pdl(act_vec_kernel<T>, dim3(grid_for(p.T * p.I / 8, 256)), dim3(256), 0, s, p);
    } else {
      launch_pdl(act_kernel<T>, dim3(grid_for(p.T * p.I, 256)), dim3(256), 0, s, p);
    }
  });
}

void GatherKParams::check() const {
  need(x && rows && out, "gather_rows: null pointer");
  need(R >= 0 && H > 0, "gather_rows: bad sizes");
}
void invoke(const GatherKParams& p, cudaStream_t s) {
  p.check();
  if (p.R == 0) return;
  dispatch_float(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_pdl(gather_kernel<T>, dim3(unsigned(p.R)), dim3(row_threads(p.H)), 0, s, p);
  });
}

void ArgmaxKParams::check() const {
  need(logits && out, "argmax: null pointer");
  need(R >= 0 && V > 0 && blocks >= 1, "argmax: bad sizes");
  need(blocks == 1 || (part_val && part_idx && counters), "argmax: split workspace missing");
}
void invoke(const ArgmaxKParams& p, cudaStream_t s) {
  p.check();
  if (p.R == 0) return;
  launch_pdl(argmax_kernel, dim3(unsigned(p.blocks), unsigned(p.R)), dim3(p.blocks > 1 ? 256 : 1024), 0, s, p);
}

void RandomKParams::check() const { need(out || n == 0, "random_weight: null pointer"); }
void invoke(const RandomKParams& p, cudaStream_t s) {
  p.check();
  if (p.n == 0) return;
  dispatch_float(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    random_kernel<T><<<grid_for(p.n, 256), 256, 0, s>>>(p);
    KILN_CUDA_CHECK(cudaGetLastError());
  });
}

void RopeTableKParams::check() const { need(inv_freq && out && len >= 0 && hd > 0 && hd % 2 == 0, "rope table: bad params"); }
void invoke(const RopeTableKParams& p, cudaStream_t s) {
  p.check();
  if (p.len == 0) return;
  rope_table_kernel<<<grid_for(p.len * p.hd / 2, 256), 256, 0, s>>>(p);
  KILN_CUDA_CHECK(cudaGetLastError());
}

void BiasKParams::check() const { need(out && bias, "bias: null pointer"); }
void invoke(const BiasKParams& p, cudaStream_t s) {
  p.check();
  if (p.T * p.N == 0) return;
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_float(p.out_dt, [&](auto otag) {
      using O = typename decltype(otag)::type;
      launch_pdl(bias_kernel<T, O>, dim3(grid_for(p.T * p.N, 256)), dim3(256), 0, s, p);
    });
  });
}

void ConvertKParams::check() const { need((in && out) || n == 0, "convert: null pointer"); }
void invoke(const ConvertKParams& p, cudaStream_t s) {
  p.check();
  if (p.n == 0) return;
  dispatch_float(p.in_dt, [&](auto itag) {
    using I = typename decltype(itag)::type;
    dispatch_float(p.out_dt, [&](auto otag) {
      using O = typename decltype(otag)::type;
      convert_kernel<I, O><<<grid_for(p.n, 256), 256, 0, s>>>(p);
      KILN_CUDA_CHECK(cudaGetLastError());
    });
  });
}

}  // namespace kiln::cuda
