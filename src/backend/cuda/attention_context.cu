// Flash-style paged attention for the context phase (and mixed steps): one CTA per (query tile, head, sequence),
// warps of 16 query rows each (128-row tiles up to head_dim 128). Q stays in registers as mma fragments; K and V tiles are gathered
// from the paged cache through the block table with cp.async into a double buffer; S = Q K^T and O += P V on
// tensor cores (mma.sync m16n8k16, fp32 accumulation); online softmax in registers (exp2, scale folded in).
// Causal over positions num_cached + i, GQA (head h reads kv head h / (nh / nkv)), optional sliding window;
// earlier chunks of a prompt are read from the cache like any other key.
#include <cfloat>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/mma_util.cuh"

namespace kiln::cuda {

namespace {

constexpr int kPad = 8;  // smem row padding (elements): conflict-free fragment loads

// 16 query rows per warp; W warps per CTA (W * 16-row query tiles).
template <int HD, int W>
struct Cfg {
  static constexpr int WARPS = W;
  static constexpr int BM = 16 * WARPS;           // query rows per CTA
  static constexpr int BN = HD > 128 ? 32 : 64;  // keys per tile
  static constexpr int LD = HD + kPad;            // smem row stride (elements)
  static constexpr size_t smem_elems = size_t(BM) * LD + 2 * 2 * size_t(BN) * LD;  // Q + 2 x (K, V)
};

template <class T, int HD, int W>
__global__ void __launch_bounds__(W * 32) context_attention_kernel(AttentionKParams p) {
  using C = Cfg<HD, W>;
  constexpr int BN = C::BN, LD = C::LD, VPR = HD / 8, kBM = C::BM;  // VPR: 16-byte vectors per row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* Qs = reinterpret_cast<T*>(smem_raw);  // [kBM][LD]
  T* KVs = Qs + kBM * LD;                  // [2 buffers][K, V][BN][LD]

  pdl_wait();
  const int s = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * kBM;
  const int tok0 = p.seq_offsets[s], n_new = p.seq_offsets[s + 1] - tok0;
  if (q0 >= n_new || (p.skip_single && n_new == 1)) return;
  const int cached = p.num_cached[s];
  const int64_t hd = p.hd, row = (p.nh + 2 * p.nkv) * hd;
  const int kvh = int(h / (p.nh / p.nkv));
  const int hd_vecs = int(hd / 8);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;

  // Q tile -> smem (zero rows past the chunk and dims past hd).
  const T* qkv = static_cast<const T*>(p.qkv);
  for (int i = tid; i < kBM * VPR; i += blockDim.x) {
    const int r = i / VPR, v = i % VPR;
    const bool ok = q0 + r < n_new && v < hd_vecs;
    cp_async16(Qs + r * LD + v * 8, ok ? qkv + int64_t(tok0 + q0 + r) * row + int64_t(h) * hd + v * 8 : qkv, ok);
  }
  cp_async_commit();

  const int first_pos = cached + q0, last_pos = cached + min(q0 + kBM, n_new) - 1;
  const int k_lo = p.window > 0 ? max(0, first_pos - int(p.window) + 1) : 0;
  const int k_begin = (k_lo / BN) * BN;
  const int num_tiles = (last_pos - k_begin) / BN + 1;
  const T* cache = static_cast<const T*>(p.cache);
  const int32_t* table = p.block_tables + int64_t(s) * p.max_blocks;
  const int64_t kv_plane = p.nkv * p.tpb * hd;  // elements between a block's K and V
  const PageDiv pd(p.tpb);

  auto load_tile = [&](int tile, int buf) {
    T* Ks = KVs + buf * 2 * BN * LD;
    T* Vs = Ks + BN * LD;
    const int kb = k_begin + tile * BN;
    for (int i = tid; i < BN * VPR; i += blockDim.x) {
      const int r = i / VPR, v = i % VPR, kp = kb + r;
      const bool ok = kp <= last_pos && v < hd_vecs;
      const T* src = cache;
      if (ok) {
        const int64_t blk = table[pd.block(kp)];
        src = cache + blk * 2 * kv_plane + (int64_t(kvh) * p.tpb + pd.offset(kp)) * hd + v * 8;
      }
      cp_async16(Ks + r * LD + v * 8, src, ok);
      cp_async16(Vs + r * LD + v * 8, ok ? src + kv_plane : cache, ok);
    }
  };
  load_tile(0, 0);
  cp_async_commit();
  cp_async_wait<1>();  // Q has landed
  __syncthreads();

  uint32_t qf[HD / 16][4];
  {
    const T* q = Qs + (warp * 16) * LD;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      qf[kk][0] = *reinterpret_cast<const uint32_t*>(q + g * LD + kk * 16 + 2 * tq);
      qf[kk][1] = *reinterpret_cast<const uint32_t*>(q + (g + 8) * LD + kk * 16 + 2 * tq);
      qf[kk][2] = *reinterpret_cast<const uint32_t*>(q + g * LD + kk * 16 + 2 * tq + 8);
      qf[kk][3] = *reinterpret_cast<const uint32_t*>(q + (g + 8) * LD + kk * 16 + 2 * tq + 8);
    }
  }
  float o[HD / 8][4];
#pragma unroll
  for (int i = 0; i < HD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const float sl2 = p.scale * 1.4426950408889634f;  // scores in log2 units
  const int qi0 = q0 + warp * 16 + g;               // this thread's rows: qi0 and qi0 + 8

  for (int tile = 0; tile < num_tiles; ++tile) {
    if (tile + 1 < num_tiles) {
      load_tile(tile + 1, (tile + 1) & 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* Ks = KVs + (tile & 1) * 2 * BN * LD;
    const T* Vs = Ks + BN * LD;
    const int kb = k_begin + tile * BN;

    // This warp's rows span query positions [wq_lo, wq_hi]. A tile wholly after them is skipped; one wholly
    // inside their causal (and window) range needs no mask.
    const int wq_lo = cached + q0 + warp * 16, wq_hi = wq_lo + 15;
    if (kb <= wq_hi) {
      const bool need_mask = kb + BN - 1 > wq_lo || (p.window > 0 && kb <= wq_hi - p.window) || q0 + warp * 16 + 16 > n_new;
      float sc[BN / 8][4];
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
        sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk += 2) {  // K fragments of two k-steps per ldmatrix.x4
          uint32_t b[4];
          ldmatrix_x4(b[0], b[1], b[2], b[3], Ks + (nt * 8 + (lane & 7)) * LD + kk * 16 + (lane >> 3) * 8);
          mma16816<T>(sc[nt], qf[kk], b[0], b[1]);
          mma16816<T>(sc[nt], qf[kk + 1], b[2], b[3]);
        }
      }
      // scale (+ mask) and the tile's row maxima
      float tmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (need_mask) {
            const int qi = qi0 + (e >= 2 ? 8 : 0), qpos = cached + qi;
            const int kp = kb + nt * 8 + 2 * tq + (e & 1);
            const bool ok = qi < n_new && kp <= qpos && (p.window <= 0 || kp > qpos - p.window);
            sc[nt][e] = ok ? sc[nt][e] * sl2 : -INFINITY;
          } else {
            sc[nt][e] *= sl2;
          }
          tmax[e >> 1] = fmaxf(tmax[e >> 1], sc[nt][e]);
        }
      }
      online_softmax_step(sc, tmax, m, l, o);
      // O += P V (P from the score registers, V fragments of two d-tiles per ldmatrix.x4.trans)
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t pa[4];
        pa[0] = pack2<T>(sc[2 * kk][0], sc[2 * kk][1]);
        pa[1] = pack2<T>(sc[2 * kk][2], sc[2 * kk][3]);
        pa[2] = pack2<T>(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
        pa[3] = pack2<T>(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt += 2) {
          uint32_t b[4];
          ldmatrix_x4_trans(b[0], b[1], b[2], b[3], Vs + (kk * 16 + (lane & 15)) * LD + (dt + (lane >> 4)) * 8);
          mma16816<T>(o[dt], pa, b[0], b[1]);
          mma16816<T>(o[dt + 1], pa, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the buffer is refilled next iteration
  }
  pdl_launch_dependents();
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int qi = qi0 + r * 8;
    if (qi >= n_new) continue;
    const float inv = 1.f / l[r];
    T* orow = out + int64_t(tok0 + qi) * p.nh * hd + int64_t(h) * hd;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      const int d = dt * 8 + 2 * tq;
      if (d < hd) *reinterpret_cast<uint32_t*>(orow + d) = pack2<T>(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
    }
  }
}

template <class T, int HD, int W>
void launch_context_w(const AttentionKParams& p, cudaStream_t s) {
  using C = Cfg<HD, W>;
  const size_t smem = C::smem_elems * sizeof(T);
  allow_smem<context_attention_kernel<T, HD, W>>(smem);
  const dim3 grid(unsigned(ceil_div(p.max_new_tokens, C::BM)), unsigned(p.nh), unsigned(p.S));
  launch_pdl(context_attention_kernel<T, HD, W>, grid, dim3(W * 32), smem, s, p);
}

// 128-row query tiles (8 warps) up to head_dim 128: measured 9% faster than 64-row tiles on a 2048-token
// prompt (8B shape, H100); 64-row tiles for head_dim 256 (registers).
template <class T, int HD>
void launch_context(const AttentionKParams& p, cudaStream_t s) {
  if constexpr (HD <= 128) {
    launch_context_w<T, HD, 8>(p, s);
  } else {
    launch_context_w<T, HD, 4>(p, s);
  }
}

}  // namespace

void AttentionKParams::check() const {
  if (!qkv || !out || !cache || !seq_offsets || !num_cached || !block_tables) throw_error("attention: null pointer");
  if (S <= 0 || nh <= 0 || nkv <= 0 || nh % nkv || tpb <= 0 || max_blocks <= 0) throw_error("attention: bad sizes");
  if (hd % 8 || hd > 256) throw_error("attention: head_dim must be a multiple of 8, at most 256");
}

void invoke_context_attention(const AttentionKParams& p, cudaStream_t s) {
  p.check();
  if (p.T == 0) return;
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.hd <= 32) {
      launch_context<T, 32>(p, s);
    } else if (p.hd <= 64) {
      launch_context<T, 64>(p, s);
    } else if (p.hd <= 128) {
      launch_context<T, 128>(p, s);
    } else {
      launch_context<T, 256>(p, s);
    }
  });
}

}  // namespace kiln::cuda
