// Split-KV paged attention for generation steps (one new token per sequence). Grid (kv head, sequence, split),
// the split slowest so that the CTAs with keys are dispatched before the empty ones. Each CTA serves all
// G = nh / nkv query heads of one kv head (K and V read once per group) over one chunk of the context. Inside a
// CTA, groups of LPK lanes take one key each (16-byte loads, KB keys batched per group so several loads are in
// flight), with a running (max, sum, acc) per group; groups merge through shared memory.
// With several splits, each writes (o, lse) partials and the last CTA to arrive (an atomic counter per
// (sequence, kv head), reset by that CTA) merges them, loading them together, in one pass: no second kernel. The
// grid depends only on the batch size and the engine's max_seq_len, so a CUDA graph replays it at any context
// length. Optionally the step's rope_kv is fused in (ROPE): q and the new k are rotated in registers and the new
// k, v written to the cache by the group that would have read them, which saves a kernel (and its launch gap) per
// layer at batch 1.
// Measured on the H100 (bench/gpu/NOTES.md): the split-slowest grid (session 7, against the split fastest), the
// groups' merge weights computed once per (group, head) (session 7) and the one-pass split merge (session 8).
// Batch-invariant mode (INV): every new token of the step is a row of the grid (grid y), prompt chunks included,
// each with its own causal limit and window; chunks of p.inv_chunk keys from the row's first key, so the splits
// (and the merge) depend on the row's own context only. Every load waits for the dependency (rope_kv wrote all
// the new keys); no RoPE fusion.
#include <cfloat>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/mma_util.cuh"

namespace kiln::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMergeBatch = 4;  // split partials loaded at once by the merging CTA
constexpr int KB = 4;  // keys batched per group; a split takes at least one round of NG * KB keys (measured:
                       // more splits of one round each beat fewer splits of two rounds at batch 1)

template <int HD>
struct DCfg {
  static constexpr int LPK = HD / 8 < 16 ? HD / 8 : 16;  // lanes per key
  static constexpr int VPL = HD / 8 / LPK;               // 16-byte vectors per lane
  static constexpr int NG = kThreads / LPK;              // key groups per CTA
};

// Shared memory: the K/V rounds, double-buffered ([2][KB][NG][k, v][HD] of T), later reused for the merge of the
// groups ([NG][G][HD] acc, [NG][G] m, l and weight, [G] maximum; fp32).
template <class T, int HD, int G>
constexpr size_t decode_smem() {
  const size_t kv = size_t(2) * KB * DCfg<HD>::NG * 2 * HD * sizeof(T);
  const size_t merge = (size_t(DCfg<HD>::NG) * G * (HD + 3) + G) * sizeof(float);
  return (kv > merge ? kv : merge) + 16;
}

// RoPE of the new token's q or k in registers: lane holds dims vec * 8 + i (vec = lig + v * LPK) of one head;
// the partner dim (d +- hd / 2) is in lane ^ (LPK / 2) (one vector per lane) or in the other vector (two).
// x = x c - x' s below hd / 2, x c + x' s above (as rope_kv), rounded through T.
template <class T, int HD>
__device__ __forceinline__ void rope_vecs(float (&x)[DCfg<HD>::VPL * 8], const float (&cs)[DCfg<HD>::VPL * 8],
                                          const float (&sn)[DCfg<HD>::VPL * 8], int lig) {
  constexpr int LPK = DCfg<HD>::LPK, VPL = DCfg<HD>::VPL;
  float partner[VPL * 8];
#pragma unroll
  for (int j = 0; j < VPL * 8; ++j) {
    if constexpr (VPL == 1) {
      partner[j] = __shfl_xor_sync(0xffffffffu, x[j], LPK / 2);
    } else {
      partner[j] = x[(j + 8) % 16];
    }
  }
#pragma unroll
  for (int v = 0; v < VPL; ++v) {
    const bool low = (lig + v * LPK) < HD / 16;  // the vector's dims are below hd / 2
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int j = v * 8 + i;
      x[j] = round_to<T>(low ? x[j] * cs[j] - partner[j] * sn[j] : x[j] * cs[j] + partner[j] * sn[j]);
    }
  }
}

template <class T, int HD, int G, bool ROPE, bool INV>
// Two CTAs per SM where registers allow it without spilling (more loads in flight at large batch).
__global__ void __launch_bounds__(kThreads, (G <= 4 && HD <= 128) ? 2 : 1) decode_attention_kernel(AttentionKParams p) {
  using C = DCfg<HD>;
  constexpr int LPK = C::LPK, VPL = C::VPL, NG = C::NG;
  extern __shared__ __align__(16) float dsm[];
  T* kvs = reinterpret_cast<T*>(dsm);      // [2][KB][NG][2][HD] K/V rounds (each thread reads only its own slots)
  float* sm_acc = dsm;                     // [NG][G][HD] (after the loop)
  float* sm_m = sm_acc + NG * G * HD;      // [NG][G]
  float* sm_l = sm_m + NG * G;             // [NG][G]
  float* sm_w = sm_l + NG * G;             // [NG][G] a group's weight exp2(m - M) in its head's merge
  float* sm_M = sm_w + NG * G;             // [G] a head's maximum over the groups
  __shared__ int is_last;

  // Step metadata comes from host copies and keys before the new token from earlier steps: both are read
  // before the dependency wait; the new token's q, k and v (written by rope_kv just before) after it.
  const int kvh = blockIdx.x, split = blockIdx.z;
  const int grow = blockIdx.y;  // the grid's row: a sequence, or (INV) a query row
  int s, t, pos;  // the row's sequence, token and position (its k, v are already in the cache)
  if constexpr (INV) {
    t = int(p.row0) + grow;
    s = p.token_seq[t];
    pos = p.num_cached[s] + (t - p.seq_offsets[s]);
  } else {
    s = grow;
    t = p.seq_offsets[s];
    if (p.seq_offsets[s + 1] - t != 1) return;  // a context chunk: the context kernel's
    pos = p.num_cached[s];
  }
  const int prow = INV ? grow : s;  // the row of the partials and counters
  const int k_lo = p.window > 0 ? max(0, pos - int(p.window) + 1) : 0;
  const int n = pos + 1 - k_lo;
  // Invariant: chunks of inv_chunk keys (the grid has splits for max_seq_len; a longer context, which the engine's
  // limits exclude, would get longer chunks rather than lose its last splits).
  const int chunk = INV ? max(p.inv_chunk, (n + p.num_splits - 1) / p.num_splits)
                        : max(NG * KB, (n + p.num_splits - 1) / p.num_splits);
  const int active = (n + chunk - 1) / chunk;
  if (split >= active) return;
  const int k0 = k_lo + split * chunk, k1 = min(k_lo + n, k0 + chunk);
  const int64_t hd = p.hd, row = (p.nh + 2 * p.nkv) * hd;
  const int hd_vecs = int(hd / 8);
  const int tid = threadIdx.x, gid = tid / LPK, lig = tid % LPK;
  const T* cache = static_cast<const T*>(p.cache);
  const int32_t* table = p.block_tables + int64_t(s) * p.max_blocks;
  const int64_t kv_plane = p.nkv * p.tpb * hd;
  const PageDiv pd(p.tpb);
  auto slot = [&](int buf, int b, int kv) { return kvs + ((size_t(buf * KB + b) * NG + gid) * 2 + kv) * HD; };
  // Starts the copies of one round (KB keys per group) into buffer `buf`; keys past k1 and dims past hd are
  // zero-filled. Before the wait the new token's key is skipped (rope_kv is writing it).
  auto issue_round = [&](int base, int buf, bool before_wait) {
#pragma unroll
    for (int b = 0; b < KB; ++b) {
      const int kp = base + gid + b * NG;
      const bool want = kp < k1 && !((before_wait || ROPE) && kp == pos);
      const T* src = want ? cache + int64_t(table[pd.block(kp)]) * 2 * kv_plane + (int64_t(kvh) * p.tpb + pd.offset(kp)) * hd
                          : cache;
#pragma unroll
      for (int v = 0; v < VPL; ++v) {
        const int vec = lig + v * LPK;
        const bool ok = want && vec < hd_vecs;
        cp_async16(slot(buf, b, 0) + vec * 8, ok ? src + vec * 8 : cache, ok);
        cp_async16(slot(buf, b, 1) + vec * 8, ok ? src + kv_plane + vec * 8 : cache, ok);
      }
    }
    cp_async_commit();
  };
  if constexpr (!INV) issue_round(k0, 0, true);
  // Fused RoPE: this lane's cos and sin, from the table (host-made) before the wait.
  float rc[VPL * 8], rs[VPL * 8];
  if constexpr (ROPE) {
#pragma unroll
    for (int v = 0; v < VPL; ++v) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int fi = ((lig + v * LPK) * 8 + i) % (HD / 2);
        if (pos < p.rope_table_len) {
          rc[v * 8 + i] = p.rope_cos_sin[int64_t(pos) * HD + fi];
          rs[v * 8 + i] = p.rope_cos_sin[int64_t(pos) * HD + HD / 2 + fi];
        } else {
          rope_cos_sin(pos, p.rope_inv_freq[fi], rc[v * 8 + i], rs[v * 8 + i]);
        }
      }
    }
  }
  pdl_wait();
  pdl_launch_dependents();  // let the next kernel (a GEMV) launch and prefetch its weights now
  if constexpr (INV) issue_round(k0, 0, false);
  // The new token's key and value, if this group's first round holds them: loaded now, into registers.
  // Fused RoPE: every lane loads them from qkv and rotates k (the shuffles need whole warps); the group whose
  // keys include pos, in whichever round, uses them and writes them to the cache.
  int new_b = -1;
  uint4 new_kv[2][VPL];
  if constexpr (ROPE) {
    const T* kr = static_cast<const T*>(p.qkv) + int64_t(t) * row + (p.nh + kvh) * hd;
    float kf[VPL * 8];
#pragma unroll
    for (int v = 0; v < VPL; ++v) {
      const int vec = lig + v * LPK;
      float f[8];
      unpack8<T>(*reinterpret_cast<const uint4*>(kr + vec * 8), f);
#pragma unroll
      for (int i = 0; i < 8; ++i) kf[v * 8 + i] = f[i];
      new_kv[1][v] = *reinterpret_cast<const uint4*>(kr + p.nkv * hd + vec * 8);
    }
    rope_vecs<T, HD>(kf, rc, rs, lig);
#pragma unroll
    for (int v = 0; v < VPL; ++v) {
      float f[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) f[i] = kf[v * 8 + i];
      new_kv[0][v] = pack8<T>(f);
    }
    if (pos >= k0 && pos < k1 && (pos - k0) % NG == gid) {
      const int slot = p.slots[t];
      T* dst = const_cast<T*>(cache) + int64_t(pd.block(slot)) * 2 * kv_plane + (int64_t(kvh) * p.tpb + pd.offset(slot)) * hd;
#pragma unroll
      for (int v = 0; v < VPL; ++v) {
        const int vec = lig + v * LPK;
        *reinterpret_cast<uint4*>(dst + vec * 8) = new_kv[0][v];
        *reinterpret_cast<uint4*>(dst + kv_plane + vec * 8) = new_kv[1][v];
      }
    }
  } else if (!INV && pos >= k0 && pos < min(k1, k0 + NG * KB) && (pos - k0 - gid) >= 0 && (pos - k0 - gid) % NG == 0) {
    new_b = (pos - k0 - gid) / NG;
    const T* src = cache + int64_t(table[pd.block(pos)]) * 2 * kv_plane + (int64_t(kvh) * p.tpb + pd.offset(pos)) * hd;
#pragma unroll
    for (int v = 0; v < VPL; ++v) {
      const int vec = lig + v * LPK;
      new_kv[0][v] = vec < hd_vecs ? *reinterpret_cast<const uint4*>(src + vec * 8) : make_uint4(0, 0, 0, 0);
      new_kv[1][v] = vec < hd_vecs ? *reinterpret_cast<const uint4*>(src + kv_plane + vec * 8) : make_uint4(0, 0, 0, 0);
    }
  }

  // This lane's dims: vectors lig + v * LPK (v < VPL), each 8 elements.
  const T* qkv = static_cast<const T*>(p.qkv) + int64_t(t) * row;
  const float sl2 = p.scale * 1.4426950408889634f;
  float q[G][VPL * 8];
  uint4 q_rot[ROPE ? G : 1][VPL];  // fused RoPE: the rotated q, as T
#pragma unroll
  for (int gi = 0; gi < G; ++gi) {
#pragma unroll
    for (int v = 0; v < VPL; ++v) {
      const int vec = lig + v * LPK;
      float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (vec < hd_vecs) unpack8<T>(*reinterpret_cast<const uint4*>(qkv + (int64_t(kvh) * G + gi) * hd + vec * 8), f);
#pragma unroll
      for (int i = 0; i < 8; ++i) q[gi][v * 8 + i] = f[i];
    }
    if constexpr (ROPE) {
      rope_vecs<T, HD>(q[gi], rc, rs, lig);  // now values of T
#pragma unroll
      for (int v = 0; v < VPL; ++v) {
        float f[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) f[i] = q[gi][v * 8 + i];
        q_rot[gi][v] = pack8<T>(f);
      }
    }
#pragma unroll
    for (int i = 0; i < VPL * 8; ++i) q[gi][i] *= sl2;
  }
  // Fused RoPE: the rotated q and k into qkv, once every CTA of this (sequence, kv head) has read them.
  auto write_back = [&] {
    if constexpr (ROPE) {
      if (gid != 0) return;
      T* row_t = const_cast<T*>(qkv);
#pragma unroll
      for (int v = 0; v < VPL; ++v) {
        const int vec = lig + v * LPK;
#pragma unroll
        for (int gi = 0; gi < G; ++gi)
          *reinterpret_cast<uint4*>(row_t + (int64_t(kvh) * G + gi) * hd + vec * 8) = q_rot[gi][v];
        *reinterpret_cast<uint4*>(row_t + (p.nh + kvh) * hd + vec * 8) = new_kv[0][v];
      }
    }
  };
  float m[G], l[G], acc[G][VPL * 8];
#pragma unroll
  for (int gi = 0; gi < G; ++gi) {
    m[gi] = -INFINITY;
    l[gi] = 0.f;
#pragma unroll
    for (int i = 0; i < VPL * 8; ++i) acc[gi][i] = 0.f;
  }

  // Trip counts are uniform across the CTA (the shuffles below need whole warps); keys past k1 are masked.
  // Round r + 1's copies are in flight while round r is computed.
  int buf = 0;
  for (int base = k0; base < k1; base += NG * KB, buf ^= 1) {
    if (base + NG * KB < k1) {
      issue_round(base + NG * KB, buf ^ 1, false);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
#pragma unroll
    for (int b = 0; b < KB; ++b) {
      const bool valid = base + gid + b * NG < k1;
      const bool is_new = ROPE ? base + gid + b * NG == pos : base == k0 && b == new_b;
      float kf[VPL * 8], vf[VPL * 8];
#pragma unroll
      for (int v = 0; v < VPL; ++v) {
        const int vec = lig + v * LPK;
        const uint4 kv0 = is_new ? new_kv[0][v] : *reinterpret_cast<const uint4*>(slot(buf, b, 0) + vec * 8);
        const uint4 kv1 = is_new ? new_kv[1][v] : *reinterpret_cast<const uint4*>(slot(buf, b, 1) + vec * 8);
        float f[8];
        unpack8<T>(kv0, f);
#pragma unroll
        for (int i = 0; i < 8; ++i) kf[v * 8 + i] = f[i];
        unpack8<T>(kv1, f);
#pragma unroll
        for (int i = 0; i < 8; ++i) vf[v * 8 + i] = f[i];
      }
#pragma unroll
      for (int gi = 0; gi < G; ++gi) {
        float d = 0.f;
#pragma unroll
        for (int i = 0; i < VPL * 8; ++i) d = fmaf(q[gi][i], kf[i], d);
#pragma unroll
        for (int o = LPK / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
        if (!valid) continue;
        const float mn = fmaxf(m[gi], d);
        const float alpha = exp2f(m[gi] - mn), pw = exp2f(d - mn);
        m[gi] = mn;
        l[gi] = l[gi] * alpha + pw;
#pragma unroll
        for (int i = 0; i < VPL * 8; ++i) acc[gi][i] = fmaf(pw, vf[i], acc[gi][i] * alpha);
      }
    }
  }
  // Merge the NG groups of this CTA (the K/V buffers become the merge arrays).
  __syncthreads();
#pragma unroll
  for (int gi = 0; gi < G; ++gi) {
#pragma unroll
    for (int v = 0; v < VPL; ++v) {
      const int vec = lig + v * LPK;
#pragma unroll
      for (int i = 0; i < 8; ++i) sm_acc[(gid * G + gi) * HD + vec * 8 + i] = acc[gi][v * 8 + i];
    }
    if (lig == 0) {
      sm_m[gid * G + gi] = m[gi];
      sm_l[gid * G + gi] = l[gi];
    }
  }
  __syncthreads();
  // Each group's weight in its head's merge, once per (group, head) rather than once per output dim.
  for (int i = tid; i < NG * G; i += kThreads) {
    const int gi = i % G;
    float M = -INFINITY;
    for (int j = 0; j < NG; ++j) M = fmaxf(M, sm_m[j * G + gi]);
    sm_w[i] = exp2f(sm_m[i] - M);  // groups without keys: exp2(-inf) = 0
    if (i < G) sm_M[gi] = M;
  }
  __syncthreads();
  const bool single = active == 1;
  T* out = static_cast<T*>(p.out) + int64_t(t) * p.nh * hd;
  const int64_t part_base = (int64_t(prow) * p.nh + int64_t(kvh) * G) * p.num_splits;  // + gi * num_splits + split
  for (int i = tid; i < G * hd; i += kThreads) {
    const int gi = i / int(hd), d = i % int(hd);
    const float M = sm_M[gi];
    float L = 0.f, O = 0.f;
    for (int j = 0; j < NG; ++j) {
      const float w = sm_w[j * G + gi];
      L += sm_l[j * G + gi] * w;
      O += sm_acc[(j * G + gi) * HD + d] * w;
    }
    if (single) {
      out[(int64_t(kvh) * G + gi) * hd + d] = from_f<T>(O / L);
    } else {
      const int64_t pi = part_base + int64_t(gi) * p.num_splits + split;
      p.part_o[pi * hd + d] = O / L;
      if (d == 0) p.part_lse[pi] = M + log2f(L);
    }
  }
  if (single) {
    write_back();
    return;
  }
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    const int prev = atomicAdd(p.counters + prow * p.nkv + kvh, 1);
    is_last = prev == active - 1;
    if (is_last) p.counters[prow * p.nkv + kvh] = 0;  // ready for the next launch
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  for (int i = tid; i < G * hd; i += kThreads) {
    const int gi = i / int(hd), d = i % int(hd);
    const int64_t pb = part_base + int64_t(gi) * p.num_splits;
    float M = -INFINITY, W = 0.f, O = 0.f;
    // The partials of up to kMergeBatch splits loaded at once (one L2 round trip, not two per split), merged
    // with a running maximum.
    for (int j0 = 0; j0 < active; j0 += kMergeBatch) {
      float lse[kMergeBatch], o[kMergeBatch];
#pragma unroll
      for (int u = 0; u < kMergeBatch; ++u) {
        const bool in = j0 + u < active;
        lse[u] = in ? __ldcg(p.part_lse + pb + j0 + u) : 0.f;
        o[u] = in ? __ldcg(p.part_o + (pb + j0 + u) * hd + d) : 0.f;
      }
#pragma unroll
      for (int u = 0; u < kMergeBatch; ++u) {
        if (j0 + u >= active) break;
        const float Mn = fmaxf(M, lse[u]), a = exp2f(M - Mn), w = exp2f(lse[u] - Mn);  // a = 0 at the first
        W = W * a + w;
        O = O * a + w * o[u];
        M = Mn;
      }
    }
    out[(int64_t(kvh) * G + gi) * hd + d] = from_f<T>(O / W);
  }
  write_back();
}

template <class T, int HD, int G, bool ROPE, bool INV>
void launch_decode_mode(const AttentionKParams& p, cudaStream_t s) {
  const size_t smem = decode_smem<T, HD, G>();
  allow_smem<decode_attention_kernel<T, HD, G, ROPE, INV>>(smem);
  const unsigned rows = unsigned(INV ? p.rows : p.S);
  const dim3 grid(unsigned(p.nkv), rows, unsigned(p.num_splits));  // the split slowest (see the top of the file)
  launch_pdl(decode_attention_kernel<T, HD, G, ROPE, INV>, grid, dim3(kThreads), smem, s, p);
}

template <class T, int HD, int G>
void launch_decode(const AttentionKParams& p, cudaStream_t s) {
  if (p.invariant) {
    launch_decode_mode<T, HD, G, false, true>(p, s);
  } else if (p.fuse_rope) {
    if (p.hd != HD) throw_error("decode attention: fused RoPE needs head_dim 32, 64, 128 or 256");
    launch_decode_mode<T, HD, G, true, false>(p, s);
  } else {
    launch_decode_mode<T, HD, G, false, false>(p, s);
  }
}

template <class T, int HD>
void launch_decode_g(const AttentionKParams& p, cudaStream_t s) {
  switch (p.nh / p.nkv) {
    case 1: return launch_decode<T, HD, 1>(p, s);
    case 2: return launch_decode<T, HD, 2>(p, s);
    case 3: return launch_decode<T, HD, 3>(p, s);
    case 4: return launch_decode<T, HD, 4>(p, s);
    case 8: return launch_decode<T, HD, 8>(p, s);
    default: throw_error("decode attention: heads per kv head must be 1, 2, 3, 4 or 8");
  }
}

}  // namespace

bool decode_attention_supported(int64_t nh, int64_t nkv) {
  const int64_t g = nh / nkv;
  return g == 1 || g == 2 || g == 3 || g == 4 || g == 8;
}

void invoke_decode_attention(const AttentionKParams& p, cudaStream_t s) {
  p.check();
  if (p.T == 0) return;
  if (p.num_splits < 1 || (p.num_splits > 1 && (!p.part_o || !p.part_lse || !p.counters)))
    throw_error("decode attention: split-KV workspace missing");
  if (p.fuse_rope && (!p.rope_inv_freq || !p.slots || (p.rope_table_len > 0 && !p.rope_cos_sin)))
    throw_error("decode attention: fused RoPE needs inv_freq, the slot mapping and the cos | sin table it names");
  if (p.invariant) {
    if (p.fuse_rope) throw_error("decode attention: no fused RoPE in batch-invariant mode");
    if (!p.token_seq || p.inv_chunk < 1 || p.row0 < 0 || p.rows < 0 || p.row0 + p.rows > p.T)
      throw_error("decode attention (batch-invariant): needs token_seq, a chunk size and rows within the step");
    if (p.rows == 0) return;
  }
  dispatch_half(p.dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.hd <= 32) {
      launch_decode_g<T, 32>(p, s);
    } else if (p.hd <= 64) {
      launch_decode_g<T, 64>(p, s);
    } else if (p.hd <= 128) {
      launch_decode_g<T, 128>(p, s);
    } else {
      launch_decode_g<T, 256>(p, s);
    }
  });
}

}  // namespace kiln::cuda
