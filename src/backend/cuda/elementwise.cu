// Row-wise and element-wise kernels: embedding, norms fused with the residual add, activations, row gather,
// argmax, random weights, bias add, dtype conversion. Each mirrors the cpu backend's loop of the same name.
#include <cfloat>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kernels.h"

namespace kiln::cuda {

namespace {

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
__global__ void argmax_kernel(ArgmaxKParams p) {
  __shared__ float sv[32];
  __shared__ int32_t si[32];
  pdl_wait();
  pdl_launch_dependents();  // small kernel: let the next one launch (and prefetch weights) now
  const int64_t r = blockIdx.x;
  const float* x = p.logits + r * p.V;
  float best = -FLT_MAX;
  int32_t bi = INT32_MAX;
  for (int64_t v = threadIdx.x; v < p.V; v += blockDim.x) {
    const float y = x[v];
    if (y > best) {  // per thread, indices ascend: strict > keeps the first maximum
      best = y;
      bi = int32_t(v);
    }
  }
  auto better = [](float a, int32_t ai, float b, int32_t bj) { return a > b || (a == b && ai < bj); };
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ob = __shfl_xor_sync(0xffffffffu, best, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (better(ob, oi, best, bi)) {
      best = ob;
      bi = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sv[warp] = best;
    si[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    const int nw = blockDim.x >> 5;
    best = lane < nw ? sv[lane] : -FLT_MAX;
    bi = lane < nw ? si[lane] : INT32_MAX;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (better(ob, oi, best, bi)) {
        best = ob;
        bi = oi;
      }
    }
    if (lane == 0) p.out[r] = bi == INT32_MAX ? 0 : bi;
  }
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
void invoke(const NormKParams& p, cudaStream_t s) {
  p.check();
  if (p.T == 0) return;
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_pdl(norm_kernel<T>, dim3(unsigned(p.T)), dim3(row_threads(p.H)), 0, s, p);
  });
}

void ActKParams::check() const {
  need(in && out, "activation: null pointer");
  need(T >= 0 && I > 0, "activation: bad sizes");
}
void invoke(const ActKParams& p, cudaStream_t s) {
  p.check();
  if (p.T == 0) return;
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_pdl(act_kernel<T>, dim3(grid_for(p.T * p.I, 256)), dim3(256), 0, s, p);
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
  need(R >= 0 && V > 0, "argmax: bad sizes");
}
void invoke(const ArgmaxKParams& p, cudaStream_t s) {
  p.check();
  if (p.R == 0) return;
  launch_pdl(argmax_kernel, dim3(unsigned(p.R)), dim3(1024), 0, s, p);
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
