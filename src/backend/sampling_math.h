// Sampling math shared by the cpu backend (src/backend/cpu/sampling.cpp) and the cuda kernels
// (src/backend/cuda/sampling.cu): the per-row parameters of Backend::sample / top_log_probs, the penalty rule,
// the seeded uniform numbers of the draws and the order-preserving key of a logit. Host and device code
// (nvcc compiles these __host__ __device__); no other kiln header.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define KILN_HD __host__ __device__ __forceinline__
#else
#define KILN_HD inline
#endif

namespace kiln {

// One row of Backend::sample or Backend::top_log_probs, uploaded as bytes (a POD of 80 bytes).
struct SampleRowParams {
  float temperature = 0.0f;  // sample: <= 0 (or NaN): greedy argmax
  int32_t top_k = 0;         // sample: keep the k most likely tokens (0: off)
  float top_p = 1.0f;        // sample: keep tokens while the mass before each is below top_p (1: off)
  float min_p = 0.0f;        // sample: drop tokens less likely than min_p times the most likely one (0: off)
  float repetition_penalty = 1.0f;  // every listed id: l > 0 ? l / p : l * p
  float presence_penalty = 0.0f;    // listed ids with count > 0: l -= presence + frequency * count
  float frequency_penalty = 0.0f;
  int32_t want_log_prob = 0;  // greedy rows compute the log-softmax only when asked (sampled rows always)
  uint64_t seed = 0, stream = 0, counter = 0;  // the draw's uniform number: seeded_uniform(seed, stream, counter)
  int32_t logits_row = 0;                      // the row of logits [L, V] this row reads (rows may share one)
  int32_t pen_begin = 0, pen_end = 0;          // [begin, end) of this row's entries in the penalty list
  int32_t ban_begin = 0, ban_end = 0;          // [begin, end) of this row's ids in the ban list
  int32_t reserved = 0;
};
static_assert(sizeof(SampleRowParams) == 80, "SampleRowParams is uploaded as bytes: keep its layout fixed");

// A penalty list entry: a token of the sequence (prompt or output, each id once per row) and how many times it
// occurs in the output.
struct PenaltyEntry {
  int32_t id = 0;
  int32_t count = 0;
};
static_assert(sizeof(PenaltyEntry) == 8, "PenaltyEntry is uploaded as I32 pairs");

// What sample writes for a row that has no result: every logit is -inf (kNoToken), or the row's parameters
// point outside the logits or the lists (kBadRow).
constexpr int32_t kNoToken = -1;
constexpr int32_t kBadRow = -2;

// The most candidates top_log_probs gives per row.
constexpr int64_t kMaxTopLogProbs = 1024;

KILN_HD bool sample_row_valid(const SampleRowParams& p, int64_t num_logits_rows, int64_t num_penalties,
                              int64_t num_bans) {
  return p.logits_row >= 0 && p.logits_row < num_logits_rows && p.pen_begin >= 0 && p.pen_begin <= p.pen_end &&
         p.pen_end <= num_penalties && p.ban_begin >= 0 && p.ban_begin <= p.ban_end && p.ban_end <= num_bans;
}

// Float arithmetic in round-to-nearest without contraction into FMAs, so host and device give the same bits.
KILN_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
KILN_HD float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
KILN_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// The penalties on one value (a logit, or a log-prob for beam search) of a token that occurs `count` times in
// the output (0: only in the prompt): repetition first, then presence and frequency.
KILN_HD float penalized(float l, int32_t count, const SampleRowParams& p) {
  const float r = p.repetition_penalty;
  if (r != 1.0f) l = l > 0 ? div_rn(l, r) : mul_rn(l, r);
  if (count > 0 && (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f))
    l = add_rn(l, -add_rn(p.presence_penalty, mul_rn(p.frequency_penalty, float(count))));
  return l;
}

KILN_HD bool has_penalties(const SampleRowParams& p) {
  return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
}

KILN_HD uint64_t mix64(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A uniform number in [0, 1) that is a pure function of its arguments: the request's seed, the sequence's index
// within the request and the index of the token.
KILN_HD double seeded_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
  uint64_t x = mix64(seed);
  x = mix64(x ^ (stream * 0xd1b54a32d192ed03ULL));
  x = mix64(x ^ (counter * 0xaef17502108ef2d9ULL));
  return double(x >> 11) * 0x1.0p-53;
}

// An unsigned key with the order of the floats: a > b iff key(a) > key(b); -0 and +0 share a key; NaN sorts
// below -inf (key 0). Ties between equal keys are broken by the lower token id everywhere.
KILN_HD uint32_t order_key(float f) {
  if (f != f) return 0;
  if (f == 0.0f) f = 0.0f;
  uint32_t u;
#ifdef __CUDA_ARCH__
  u = __float_as_uint(f);
#else
  __builtin_memcpy(&u, &f, 4);
#endif
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
// The float of a key (the inverse of order_key for non-NaN values; zero comes back as +0).
KILN_HD float key_float(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float f;
#ifdef __CUDA_ARCH__
  f = __uint_as_float(u);
#else
  __builtin_memcpy(&f, &u, 4);
#endif
  return f;
}

// The unnormalized sampling weight of a logit: exp((l - max) / temperature) with inv_t = 1 / temperature, in
// double on every backend.
KILN_HD double sample_weight(float l, float max, double inv_t) { return ::exp((double(l) - double(max)) * inv_t); }

// The result of one sampled row.
struct SampledToken {
  int32_t id = kNoToken;
  // Log-probability of `id` in the distribution it was chosen from: log_softmax of the penalized logits for
  // greedy (0 unless want_log_prob); the final (temperature-scaled, filtered, renormalized) distribution when
  // sampling.
  float log_prob = 0;
};

}  // namespace kiln
