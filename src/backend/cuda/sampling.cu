// Backend::sample and Backend::top_log_probs on the device: one CTA of kThreads per row; the row's private copy of
// its logits lives in a row of the workspace, and every filter writes -inf over the tokens it drops, so "kept"
// is "finite". The reference is src/backend/cpu/sampling.cpp; the math both share is backend/sampling_math.h.
//
//   copy the row, penalties, bans -> block argmax (first maximum) -> greedy: done (log-softmax on request)
//   sampling: top-k: 4-pass 8-bit radix select of the k-th largest order key (ties at the threshold kept
//             lowest id first, by a count in id order) -> top-p: the same radix select over weight histograms
//             of the kept tokens (exact fixed-point sums: the same whatever order the atomics land in), for
//             the key t* with mass(key > t*) < top_p Z <= mass(key >= t*) -> min-p: weight >= min_p (the
//             argmax always kept) -> draw: warp-segment sums in id order, then the first token whose cumulative
//             weight exceeds u Z.
//   top_log_probs: log-softmax, penalties and bans on the log-probs, radix select of the k-th best, the k best
//             collected and ordered by rank (value desc, id asc).
//
// Scans in id order: warp w owns the contiguous segment [w seg, (w + 1) seg) of the row, read 32 tokens at a time.
#include <cfloat>
#include <climits>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kernels.h"

namespace kiln::cuda {

namespace {

constexpr int kThreads = 1024, kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

struct Smem {
  unsigned cnt[256];   // radix histogram: tokens per digit
  unsigned long long mass_hi[256], mass_lo[256];  // radix histogram: weight per digit (top-p), Fixed88 sums
  double wd[kWarps];   // per-warp partials
  int wi[kWarps];
  float wf[kWarps];
  unsigned sel_digit;  // the digit a radix pass chose ...
  int sel_above;       // ... the tokens above it (this pass), the tokens in it, and the pass's total
  int sel_count;
  int sel_total;
  double sel_mass_above, sel_mass_total;  // top-p: the mass above the digit (all passes so far); pass 0's total
  int chosen;       // the draw's token and its weight
  double chosen_w;
  int n_cand;       // top_log_probs: candidates collected so far
  int cand_id[kMaxTopLogProbs];
  float cand_val[kMaxTopLogProbs];
};

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }
__device__ __forceinline__ bool finite_or_inf(float l) { return l > neg_inf(); }  // not -inf, not NaN
__device__ __forceinline__ unsigned digit_of(unsigned key, int shift) { return (key >> shift) & 255u; }

// A weight in [0, 1] as an exact fixed-point number in two parts: hi = floor(w 2^44), lo = floor(w 2^88) - hi 2^44.
// Integer sums are exact, so a histogram's masses do not depend on the order its atomics land in (a double
// atomicAdd's rounding does: top-p would not be deterministic); below 2^20 tokens no sum overflows 64 bits.
struct Fixed88 {
  unsigned long long hi = 0, lo = 0;
};
__device__ __forceinline__ Fixed88 to_fixed(double w) {
  const double a = w * 0x1p44, h = floor(a);  // both exact, and so is a - h
  return {static_cast<unsigned long long>(h), static_cast<unsigned long long>((a - h) * 0x1p44)};
}
__device__ __forceinline__ double from_fixed(unsigned long long hi, unsigned long long lo) {
  return double(hi) * 0x1p-44 + double(lo) * 0x1p-88;
}

template <class T>
__device__ __forceinline__ T warp_incl_scan(T x) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const T t = __shfl_up_sync(kFull, x, o);
    if (lane >= o) x += t;
  }
  return x;
}

// The segment [begin, end) of warp `warp` for scans in id order (a multiple of 32 tokens long).
__device__ __forceinline__ void segment(int V, int warp, int& begin, int& end) {
  const int seg = ((V + kWarps - 1) / kWarps + 31) / 32 * 32;
  begin = min(V, warp * seg);
  end = min(V, begin + seg);
}

// Block-wide (value, index) maximum, the lowest index among equal values; NaN never wins. Every thread gets it.
__device__ void block_argmax(float& best, int& bi, Smem& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ob = __shfl_xor_sync(kFull, best, o);
    const int oi = __shfl_xor_sync(kFull, bi, o);
    if (ob > best || (ob == best && oi < bi)) best = ob, bi = oi;
  }
  __syncthreads();
  if (lane == 0) s.wf[warp] = best, s.wi[warp] = bi;
  __syncthreads();
  best = s.wf[lane];
  bi = s.wi[lane];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ob = __shfl_xor_sync(kFull, best, o);
    const int oi = __shfl_xor_sync(kFull, bi, o);
    if (ob > best || (ob == best && oi < bi)) best = ob, bi = oi;
  }
}

// x := the row's copy of its logits (or log-probs) with the penalties, then -inf on the banned ids.
__device__ void apply_lists(float* x, int V, const SampleRowParams& rp, const SampleKParams& p) {
  for (int i = rp.pen_begin + int(threadIdx.x); i < rp.pen_end; i += kThreads) {
    const PenaltyEntry e = p.penalties[i];
    if (e.id >= 0 && e.id < V) x[e.id] = penalized(x[e.id], e.count, rp);  // ids are distinct within a row
  }
  __syncthreads();
  for (int i = rp.ban_begin + int(threadIdx.x); i < rp.ban_end; i += kThreads) {
    const int id = p.bans[i];
    if (id >= 0 && id < V) x[id] = neg_inf();
  }
  __syncthreads();
}

// Warp 0, after a counting pass: the digit (from 255 down) at which the running count of tokens reaches `rem`.
__device__ void choose_digit_by_count(Smem& s, int rem) {
  const int lane = threadIdx.x & 31;
  int c[8], sum = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) sum += c[j] = int(s.cnt[255 - 8 * lane - j]);
  const int incl = warp_incl_scan(sum);
  const int shifted = __shfl_up_sync(kFull, incl, 1);  // every lane: a full-mask shuffle needs all 32
  const int excl = lane == 0 ? 0 : shifted;
  int run = excl, found = -1, above = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    if (found < 0 && run + c[j] >= rem) found = j, above = run;
    run += c[j];
  }
  const unsigned hit = __ballot_sync(kFull, found >= 0);
  if (hit && lane == __ffs(hit) - 1) {
    s.sel_digit = unsigned(255 - 8 * lane - found);
    s.sel_above = above;
    s.sel_count = c[found];
  }
  if (lane == 31) s.sel_total = incl;
}

struct Selection {
  unsigned key = 0;  // the k-th largest key
  int need = 0;      // tokens with that key among the k (the lowest ids)
  int eq = 0;        // tokens with that key
  bool all = false;  // at most k candidates: every one is selected
};

// Radix select over the tokens of x that are finite (or every token when all_values): the k-th largest key.
__device__ Selection select_kth(const float* x, int V, int k, bool all_values, Smem& s) {
  Selection r;
  unsigned prefix = 0, mask = 0;
  int rem = k;
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    for (int i = threadIdx.x; i < 256; i += kThreads) s.cnt[i] = 0;
    __syncthreads();
    for (int v = threadIdx.x; v < V; v += kThreads) {
      const float l = x[v];
      if (!all_values && !finite_or_inf(l)) continue;
      const unsigned key = order_key(l);
      if ((key & mask) == prefix) atomicAdd(&s.cnt[digit_of(key, shift)], 1u);
    }
    __syncthreads();
    if (threadIdx.x < 32) choose_digit_by_count(s, rem);
    __syncthreads();
    if (pass == 0 && s.sel_total <= k) {
      r.all = true;
      return r;
    }
    rem -= s.sel_above;
    prefix |= s.sel_digit << shift;
    mask |= 255u << shift;
    r.eq = s.sel_count;
  }
  r.key = prefix;
  r.need = rem;
  return r;
}

// Walks the row in id order and calls f(v, keep) for every candidate token (finite, or any with all_values);
// keep: its key is above t, or it is one of the first `need` tokens with key t.
template <class F>
__device__ void walk_threshold(const float* x, int V, unsigned t, int need, bool all_values, Smem& s, F&& f) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int begin, end;
  segment(V, warp, begin, end);
  int ties = 0;
  for (int base = begin; base < end; base += 32) {
    const int v = base + lane;
    const float l = v < end ? x[v] : neg_inf();
    const bool cand = v < end && (all_values || finite_or_inf(l));
    ties += __popc(__ballot_sync(kFull, cand && order_key(l) == t));
  }
  __syncthreads();  // s.wi may still be read by an earlier phase
  if (lane == 0) s.wi[warp] = ties;
  __syncthreads();
  int rank = 0;  // ties before this warp's segment
  for (int j = 0; j < warp; ++j) rank += s.wi[j];
  for (int base = begin; base < end; base += 32) {
    const int v = base + lane;
    const float l = v < end ? x[v] : neg_inf();
    const bool cand = v < end && (all_values || finite_or_inf(l));
    const unsigned key = order_key(l);
    const unsigned tie = __ballot_sync(kFull, cand && key == t);
    const int my_rank = rank + __popc(tie & ((1u << lane) - 1u));
    if (cand) f(v, key > t || (key == t && my_rank < need));
    rank += __popc(tie);
  }
  __syncthreads();
}

// Drops (x = -inf) the finite tokens outside the selection.
__device__ void keep_selection(float* x, int V, const Selection& sel, Smem& s) {
  if (sel.all) return;
  if (sel.need == sel.eq) {  // no tie to break: a plain threshold
    for (int v = threadIdx.x; v < V; v += kThreads)
      if (finite_or_inf(x[v]) && order_key(x[v]) < sel.key) x[v] = neg_inf();
    __syncthreads();
    return;
  }
  walk_threshold(x, V, sel.key, sel.need, false, s, [&](int v, bool keep) {
    if (!keep) x[v] = neg_inf();
  });
}

// Warp 0, after a mass pass of top-p: the digit (from 255 down, non-empty) at which the running mass reaches the
// threshold (pass 0 sets it: top_p times the total); the last non-empty digit when rounding leaves none.
__device__ void choose_digit_by_mass(Smem& s, double above0, double& threshold, bool first, float top_p) {
  const int lane = threadIdx.x & 31;
  int c[8];
  double m[8], sum = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    c[j] = int(s.cnt[255 - 8 * lane - j]);
    m[j] = from_fixed(s.mass_hi[255 - 8 * lane - j], s.mass_lo[255 - 8 * lane - j]);
    sum += m[j];
  }
  const double incl = warp_incl_scan(sum), shifted = __shfl_up_sync(kFull, incl, 1);
  const double total = __shfl_sync(kFull, incl, 31);
  if (first) threshold = double(top_p) * total;
  double run = above0 + (lane == 0 ? 0.0 : shifted), above = 0, last_above = 0;
  int found = -1, last = -1;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    if (c[j] > 0) {
      if (found < 0 && run + m[j] >= threshold) found = j, above = run;
      last = j, last_above = run;
    }
    run += m[j];
  }
  const unsigned hit = __ballot_sync(kFull, found >= 0), nonempty = __ballot_sync(kFull, last >= 0);
  const int src = hit ? __ffs(hit) - 1 : 31 - __clz(nonempty);
  if (lane == src) {
    const int j = hit ? found : last;
    s.sel_digit = unsigned(255 - 8 * lane - j);
    s.sel_mass_above = hit ? above : last_above;
    s.sel_count = c[j];
  }
  if (lane == 0) s.sel_mass_total = threshold;
}

// A thread's partial (count, mass) sums of a few digits in registers, added to the shared histogram when
// evicted: the first radix passes see a handful of digits (logits cluster in few exponents), and a shared
// atomic per token on the same few bins serializes the block (H100, 64 rows of 128256 tokens, top_p 0.9 alone:
// 2.0 ms without the cache, 0.86 ms with it).
struct MassCache {
  static constexpr unsigned kNone = 0xffffffffu;
  unsigned d[4] = {kNone, kNone, kNone, kNone}, c[4] = {0, 0, 0, 0};
  unsigned long long hi[4] = {0, 0, 0, 0}, lo[4] = {0, 0, 0, 0};
  int next = 0;
  __device__ __forceinline__ void spill(int i, Smem& s) {
    if (d[i] == kNone) return;
    atomicAdd(&s.cnt[d[i]], c[i]);
    atomicAdd(&s.mass_hi[d[i]], hi[i]);
    atomicAdd(&s.mass_lo[d[i]], lo[i]);
  }
  __device__ __forceinline__ void add(unsigned digit, double w, Smem& s) {
    const Fixed88 f = to_fixed(w);
#pragma unroll
    for (int i = 0; i < 4; ++i)
      if (d[i] == digit) {
        hi[i] += f.hi;
        lo[i] += f.lo;
        ++c[i];
        return;
      }
#pragma unroll
    for (int i = 0; i < 4; ++i)  // evict round robin (unrolled: the arrays stay in registers)
      if (i == next) {
        spill(i, s);
        d[i] = digit, hi[i] = f.hi, lo[i] = f.lo, c[i] = 1;
      }
    next = (next + 1) & 3;
  }
  __device__ __forceinline__ void flush(Smem& s) {
#pragma unroll
    for (int i = 0; i < 4; ++i) spill(i, s);
  }
};

// Top-p over the finite tokens of x (the top-k survivors): keep each token, in (key desc, id asc) order, while the
// mass before it is below top_p times the total mass.
__device__ void top_p_filter(float* x, int V, float mx, double inv_t, float top_p, Smem& s) {
  unsigned prefix = 0, mask = 0;
  double above = 0, threshold = 0;
  int eq = 0;
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    for (int i = threadIdx.x; i < 256; i += kThreads) s.cnt[i] = 0, s.mass_hi[i] = 0, s.mass_lo[i] = 0;
    __syncthreads();
    MassCache cache;
    for (int v = threadIdx.x; v < V; v += kThreads) {
      const float l = x[v];
      if (!finite_or_inf(l)) continue;
      const unsigned key = order_key(l);
      if ((key & mask) == prefix) cache.add(digit_of(key, shift), sample_weight(l, mx, inv_t), s);
    }
    cache.flush(s);
    __syncthreads();
    if (threadIdx.x < 32) choose_digit_by_mass(s, above, threshold, pass == 0, top_p);
    __syncthreads();
    threshold = s.sel_mass_total;
    above = s.sel_mass_above;
    prefix |= s.sel_digit << shift;
    mask |= 255u << shift;
    eq = s.sel_count;
  }
  // Ties at t* are kept in id order while the mass before each, above + j w*, is below the threshold.
  const double w = sample_weight(key_float(prefix), mx, inv_t), room = threshold - above;
  int need = 1;
  if (room > 0) need = w > 0 ? int(fmin(double(eq), fmax(1.0, ceil(room / w)))) : eq;
  Selection sel;
  sel.key = prefix;
  sel.need = need;
  sel.eq = eq;
  keep_selection(x, V, sel, s);
}

// The draw: the first kept token in id order whose cumulative weight exceeds u Z (Z: the kept weight). Every
// thread gets the id, its weight and Z.
__device__ int draw(const float* x, int V, float mx, double inv_t, double u, Smem& s, double& w_chosen,
                    double& z) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int begin, end;
  segment(V, warp, begin, end);
  auto weight_at = [&](int v) {
    const float l = v < end ? x[v] : neg_inf();
    return finite_or_inf(l) ? sample_weight(l, mx, inv_t) : 0.0;
  };
  double run = 0;
  for (int base = begin; base < end; base += 32) run += warp_sum(weight_at(base + lane));
  __syncthreads();
  if (lane == 0) s.wd[warp] = run;
  __syncthreads();
  // Every warp: the segments' sums and the exclusive prefix of lane j's segment, summed in order.
  double excl = 0;
  for (int j = 0; j < lane; ++j) excl += s.wd[j];
  const double mine = s.wd[lane];
  z = __shfl_sync(kFull, excl + mine, 31);
  const double target = u * z;
  const unsigned hit = __ballot_sync(kFull, mine > 0 && excl + mine > target), positive = __ballot_sync(kFull, mine > 0);
  const int wsel = hit ? __ffs(hit) - 1 : 31 - __clz(positive);
  const double ex = __shfl_sync(kFull, excl, wsel);
  if (warp == wsel) {  // walk the segment: the same chunk sums as above, in the same order
    int pick = -1;  // the chunk holding the token: the first reaching the target, else the last of positive weight
    bool reached = false;
    run = 0;
    for (int base = begin; base < end; base += 32) {
      const double tot = warp_sum(weight_at(base + lane));  // the same in every lane: the branches are uniform
      if (tot > 0) {
        pick = base;
        if (ex + (run + tot) > target) {
          reached = true;
          break;
        }
      }
      run += tot;
    }
    const double w = weight_at(pick + lane), cum = ex + (run + warp_incl_scan(w));
    const unsigned h = __ballot_sync(kFull, reached && w > 0 && cum > target), positive = __ballot_sync(kFull, w > 0);
    const int src = h ? __ffs(h) - 1 : 31 - __clz(positive);
    if (lane == src) s.chosen = pick + lane, s.chosen_w = w;
  }
  __syncthreads();
  w_chosen = s.chosen_w;
  return s.chosen;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(SampleKParams p) {
  __shared__ Smem s;
  const int r = blockIdx.x, V = int(p.V);
  const SampleRowParams rp = p.rows[r];
  if (!sample_row_valid(rp, p.L, p.num_penalties, p.num_bans)) {
    if (threadIdx.x == 0) p.ids[r] = kBadRow, p.values[r] = 0.f;
    return;
  }
  float* x = p.work + int64_t(r) * V;  // [V] the row's private copy
  const float* src = p.logits + int64_t(rp.logits_row) * V;
  for (int v = threadIdx.x; v < V; v += kThreads) x[v] = src[v];
  __syncthreads();
  apply_lists(x, V, rp, p);
  float mx = neg_inf();
  int amax = INT_MAX;
  for (int v = threadIdx.x; v < V; v += kThreads)
    if (x[v] > mx) mx = x[v], amax = v;  // per thread ids ascend: strict > keeps the first maximum
  block_argmax(mx, amax, s);
  if (!(mx > neg_inf())) {  // every logit is -inf
    if (threadIdx.x == 0) p.ids[r] = kNoToken, p.values[r] = 0.f;
    return;
  }
  if (!(rp.temperature > 0)) {  // greedy
    float lp = 0.f;
    if (rp.want_log_prob) {
      double sum = 0;
      for (int v = threadIdx.x; v < V; v += kThreads) sum += exp(double(x[v]) - double(mx));
      sum = block_sum(sum, s.wd);
      lp = float(double(mx) - double(mx) - log(sum));
    }
    if (threadIdx.x == 0) p.ids[r] = amax, p.values[r] = lp;
    return;
  }
  const double inv_t = 1.0 / double(rp.temperature);
  if (rp.top_k > 0) keep_selection(x, V, select_kth(x, V, rp.top_k, false, s), s);
  if (rp.top_p < 1.0f) top_p_filter(x, V, mx, inv_t, rp.top_p, s);
  if (rp.min_p > 0.0f) {  // relative to the most likely token, whose weight is exp(0) = 1 (always kept)
    const double threshold = double(rp.min_p);
    for (int v = threadIdx.x; v < V; v += kThreads)
      if (v != amax && finite_or_inf(x[v]) && sample_weight(x[v], mx, inv_t) < threshold) x[v] = neg_inf();
    __syncthreads();
  }
  double w = 0, z = 0;
  const int id = draw(x, V, mx, inv_t, seeded_uniform(rp.seed, rp.stream, rp.counter), s, w, z);
  if (threadIdx.x == 0) p.ids[r] = id, p.values[r] = float(log(w / z));
}

__global__ void __launch_bounds__(kThreads) top_log_probs_kernel(SampleKParams p) {
  __shared__ Smem s;
  const int r = blockIdx.x, V = int(p.V), k = int(p.k);
  const SampleRowParams rp = p.rows[r];
  int32_t* out_ids = p.ids + int64_t(r) * k;
  float* out_vals = p.values + int64_t(r) * k;
  if (!sample_row_valid(rp, p.L, p.num_penalties, p.num_bans)) {
    for (int j = threadIdx.x; j < k; j += kThreads) out_ids[j] = kBadRow, out_vals[j] = 0.f;
    return;
  }
  float* x = p.work + int64_t(r) * V;  // [V] the row's log-probs
  const float* src = p.logits + int64_t(rp.logits_row) * V;
  float mx = neg_inf();
  int unused = INT_MAX;
  for (int v = threadIdx.x; v < V; v += kThreads) mx = fmaxf(mx, src[v]);  // fmaxf ignores NaN
  block_argmax(mx, unused, s);
  double sum = 0;
  for (int v = threadIdx.x; v < V; v += kThreads) sum += exp(double(src[v]) - double(mx));
  const double lse = double(mx) + log(block_sum(sum, s.wd));
  for (int v = threadIdx.x; v < V; v += kThreads) x[v] = float(double(src[v]) - lse);
  __syncthreads();
  apply_lists(x, V, rp, p);  // logits processors act on the log-probs in transformers' beam search
  const Selection sel = select_kth(x, V, k, true, s);
  if (threadIdx.x == 0) s.n_cand = 0;
  __syncthreads();
  auto add = [&](int v) {
    const int slot = atomicAdd(&s.n_cand, 1);
    s.cand_id[slot] = v;
    s.cand_val[slot] = x[v];
  };
  if (sel.all) {
    for (int v = threadIdx.x; v < V; v += kThreads) add(v);
  } else if (sel.need == sel.eq) {
    for (int v = threadIdx.x; v < V; v += kThreads)
      if (order_key(x[v]) >= sel.key) add(v);
  } else {
    walk_threshold(x, V, sel.key, sel.need, true, s, [&](int v, bool keep) {
      if (keep) add(v);
    });
  }
  __syncthreads();
  // The k candidates in (value desc, id asc) order: each one's rank is the number of candidates before it.
  for (int i = threadIdx.x; i < k; i += kThreads) {
    const unsigned ki = order_key(s.cand_val[i]);
    const int id = s.cand_id[i];
    int rank = 0;
    for (int j = 0; j < k; ++j) {
      const unsigned kj = order_key(s.cand_val[j]);
      rank += kj > ki || (kj == ki && s.cand_id[j] < id);
    }
    out_ids[rank] = id;
    out_vals[rank] = s.cand_val[i];
  }
}

void need(bool ok, const char* what) {
  if (!ok) throw_error(std::string("cuda sampling params: ") + what);
}

}  // namespace

void SampleKParams::check(bool top) const {
  need(logits && rows && work && ids && values, "null pointer");
  need(R >= 0 && L >= 1 && V >= 1 && V < INT_MAX / 2, "bad sizes");
  need(V < (1 << 20), "a vocabulary of 2^20 tokens or more (top-p's fixed-point sums would overflow)");
  need((num_penalties == 0 || penalties) && (num_bans == 0 || bans), "null penalty or ban list");
  need(num_penalties < INT_MAX && num_bans < INT_MAX, "lists too long");
  need(!top || (k >= 1 && k <= V && k <= kMaxTopLogProbs), "top_log_probs: k outside [1, min(V, 1024)]");
}

void invoke_sample(const SampleKParams& p, cudaStream_t s) {
  p.check(false);
  if (p.R == 0) return;
  sample_kernel<<<dim3(unsigned(p.R)), kThreads, 0, s>>>(p);
  KILN_CUDA_CHECK(cudaGetLastError());
}

void invoke_top_log_probs(const SampleKParams& p, cudaStream_t s) {
  p.check(true);
  if (p.R == 0) return;
  top_log_probs_kernel<<<dim3(unsigned(p.R)), kThreads, 0, s>>>(p);
  KILN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace kiln::cuda
