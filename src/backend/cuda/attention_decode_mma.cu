// Tensor-core decode attention for large batches (no split-KV needed: the batch fills the GPU). One CTA per
// (sequence with one new token, kv head); the kv head's G query heads are the rows of one 16-row mma tile (rows
// G..15 are zero). Four warps take four contiguous key ranges; each warp streams 16-key K/V tiles through its own
// double-buffered shared memory with cp.async, computes S = Q K^T and O += P V with mma.sync m16n8k16 under an
// online softmax, and the warps merge (max, sum, O) through shared memory at the end. Compared with the split-KV
// kernel (one key per lane group, shuffle reductions) this does ~20x fewer instructions per key, so large
// batches are bound by the K/V bytes rather than by issue.
#include <cfloat>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/mma_util.cuh"

namespace kiln::cuda {

namespace {

constexpr int kMWarps = 4;  // key ranges per CTA
constexpr int kMBN = 16;    // keys per tile

template <int HD>
struct MCfg {
  static constexpr int LD = HD + 8;  // smem row stride (elements): conflict-free fragment loads
  template <class T>
  static constexpr size_t smem_bytes() {
    const size_t q = size_t(16) * LD * sizeof(T);
    const size_t kv = size_t(kMWarps) * 2 * 2 * kMBN * LD * sizeof(T);   // [warp][stage][k, v][key][LD]
    const size_t merge = size_t(kMWarps) * 16 * (2 + HD) * sizeof(float);  // (m, l) and O per warp and row
    return q + (kv > merge ? kv : merge);
  }
};

template <class T, int HD>
__global__ void __launch_bounds__(kMWarps * 32) decode_mma_kernel(AttentionKParams p) {
  constexpr int LD = MCfg<HD>::LD, VPR = HD / 8;
  extern __shared__ __align__(16) unsigned char msm[];
  T* Qs = reinterpret_cast<T*>(msm);  // [16][LD]
  T* KV = Qs + 16 * LD;               // [warp][stage][k, v][kMBN][LD]
  pdl_wait();
  pdl_launch_dependents();
  const int s = blockIdx.z, kvh = blockIdx.y;
  const int t = p.seq_offsets[s];
  if (p.seq_offsets[s + 1] - t != 1) return;  // a context chunk: the context kernel's
  const int pos = p.num_cached[s];
  const int k_lo = p.window > 0 ? max(0, pos - int(p.window) + 1) : 0, n = pos + 1 - k_lo;
  const int G = int(p.nh / p.nkv), hd_vecs = int(p.hd / 8);
  const int64_t hd = p.hd, row = (p.nh + 2 * p.nkv) * hd, kv_plane = p.nkv * p.tpb * hd;
  const PageDiv pd(p.tpb);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;
  const T* qkv = static_cast<const T*>(p.qkv);
  const T* cache = static_cast<const T*>(p.cache);
  const int32_t* table = p.block_tables + int64_t(s) * p.max_blocks;

  for (int i = tid; i < 16 * VPR; i += blockDim.x) {  // Q rows: this kv head's query heads, zero below
    const int r = i / VPR, v = i % VPR;
    const bool ok = r < G && v < hd_vecs;
    cp_async16(Qs + r * LD + v * 8, ok ? qkv + int64_t(t) * row + (int64_t(kvh) * G + r) * hd + v * 8 : qkv, ok);
  }
  cp_async_commit();
  const int per = (n + kMWarps - 1) / kMWarps;
  const int w0 = k_lo + warp * per, w1 = min(k_lo + n, w0 + per);
  const int ntiles = w1 > w0 ? (w1 - w0 + kMBN - 1) / kMBN : 0;
  T* mine = KV + warp * 2 * 2 * kMBN * LD;
  auto load_tile = [&](int tile, int stage) {
    T* Ks = mine + stage * 2 * kMBN * LD;
    T* Vs = Ks + kMBN * LD;
    const int kb = w0 + tile * kMBN;
    for (int i = lane; i < kMBN * VPR; i += 32) {
      const int r = i / VPR, v = i % VPR, kp = kb + r;
      const bool ok = kp < w1 && v < hd_vecs;
      const T* src = ok ? cache + int64_t(table[pd.block(kp)]) * 2 * kv_plane + (int64_t(kvh) * p.tpb + pd.offset(kp)) * hd + v * 8
                        : cache;
      cp_async16(Ks + r * LD + v * 8, src, ok);
      cp_async16(Vs + r * LD + v * 8, ok ? src + kv_plane : cache, ok);
    }
  };
  if (ntiles > 0) load_tile(0, 0);
  cp_async_commit();
  cp_async_wait<1>();  // Q has landed (this thread's copies)
  __syncthreads();     // ... and everyone's

  uint32_t qf[HD / 16][4];
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    qf[kk][0] = *reinterpret_cast<const uint32_t*>(Qs + g * LD + kk * 16 + 2 * tq);
    qf[kk][1] = *reinterpret_cast<const uint32_t*>(Qs + (g + 8) * LD + kk * 16 + 2 * tq);
    qf[kk][2] = *reinterpret_cast<const uint32_t*>(Qs + g * LD + kk * 16 + 2 * tq + 8);
    qf[kk][3] = *reinterpret_cast<const uint32_t*>(Qs + (g + 8) * LD + kk * 16 + 2 * tq + 8);
  }
  float o[HD / 8][4];
#pragma unroll
  for (int i = 0; i < HD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const float sl2 = p.scale * 1.4426950408889634f;

  for (int tile = 0; tile < ntiles; ++tile) {
    if (tile + 1 < ntiles) {
      load_tile(tile + 1, (tile + 1) & 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncwarp();  // every lane's copies of this tile have landed
    const T* Ks = mine + (tile & 1) * 2 * kMBN * LD;
    const T* Vs = Ks + kMBN * LD;
    const int kb = w0 + tile * kMBN;
    float sc[2][4];
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        const T* kr = Ks + (nt * 8 + g) * LD + kk * 16 + 2 * tq;
        mma16816<T>(sc[nt], qf[kk], *reinterpret_cast<const uint32_t*>(kr), *reinterpret_cast<const uint32_t*>(kr + 8));
      }
    }
    float tmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const bool ok = kb + nt * 8 + 2 * tq + (e & 1) < w1;
        sc[nt][e] = ok ? sc[nt][e] * sl2 : -INFINITY;
        tmax[e >> 1] = fmaxf(tmax[e >> 1], sc[nt][e]);
      }
    online_softmax_step(sc, tmax, m, l, o);
    uint32_t pa[4];
    pa[0] = pack2<T>(sc[0][0], sc[0][1]);
    pa[1] = pack2<T>(sc[0][2], sc[0][3]);
    pa[2] = pack2<T>(sc[1][0], sc[1][1]);
    pa[3] = pack2<T>(sc[1][2], sc[1][3]);
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      uint32_t b0, b1;
      ldmatrix_x2_trans(b0, b1, Vs + (lane & 15) * LD + dt * 8);
      mma16816<T>(o[dt], pa, b0, b1);
    }
    __syncwarp();  // this stage is refilled two tiles from now
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  // Merge the four warps (the K/V area becomes the merge area).
  __syncthreads();
  float* ml = reinterpret_cast<float*>(KV);  // [warp][16][m, l]
  float* mo = ml + kMWarps * 16 * 2;         // [warp][16][HD]
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int rr = g + 8 * r;
    if (tq == 0) {
      ml[(warp * 16 + rr) * 2] = m[r];
      ml[(warp * 16 + rr) * 2 + 1] = l[r];
    }
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      mo[(warp * 16 + rr) * HD + dt * 8 + 2 * tq] = o[dt][2 * r];
      mo[(warp * 16 + rr) * HD + dt * 8 + 2 * tq + 1] = o[dt][2 * r + 1];
    }
  }
  __syncthreads();
  T* out = static_cast<T*>(p.out) + int64_t(t) * p.nh * hd;
  for (int i = tid; i < G * int(hd); i += blockDim.x) {
    const int r = i / int(hd), d = i % int(hd);
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kMWarps; ++w) M = fmaxf(M, ml[(w * 16 + r) * 2]);
    float L = 0.f, O = 0.f;
#pragma unroll
    for (int w = 0; w < kMWarps; ++w) {
      const float f = exp2f(ml[(w * 16 + r) * 2] - M);  // warps without keys: exp2(-inf) = 0
      L += ml[(w * 16 + r) * 2 + 1] * f;
      O += mo[(w * 16 + r) * HD + d] * f;
    }
    out[(int64_t(kvh) * G + r) * hd + d] = from_f<T>(O / L);
  }
}

template <class T, int HD>
void launch_mma(const AttentionKParams& p, cudaStream_t s) {
  const size_t smem = MCfg<HD>::template smem_bytes<T>();
  allow_smem<decode_mma_kernel<T, HD>>(smem);
  launch_pdl(decode_mma_kernel<T, HD>, dim3(1, unsigned(p.nkv), unsigned(p.S)), dim3(kMWarps * 32), smem, s, p);
}

}  // namespace

bool decode_mma_attention_supported(int64_t nh, int64_t nkv, int64_t hd) {
  return nkv > 0 && nh % nkv == 0 && nh / nkv <= 16 && hd % 8 == 0 && hd <= 128;
}

void invoke_decode_mma_attention(const AttentionKParams& p, cudaStream_t s) {
  p.check();
  if (p.T == 0) return;
  if (!decode_mma_attention_supported(p.nh, p.nkv, p.hd)) throw_error("decode attention (mma): unsupported head layout");
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.hd <= 32) {
      launch_mma<T, 32>(p, s);
    } else if (p.hd <= 64) {
      launch_mma<T, 64>(p, s);
    } else {
      launch_mma<T, 128>(p, s);
    }
  });
}

}  // namespace kiln::cuda
