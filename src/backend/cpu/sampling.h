// Sampling over F32 logits on the host, one row at a time: the cpu backend's sample and top_log_probs ops, and
// the reference the cuda kernels (src/backend/cuda/sampling.cu) are tested against. The semantics are those of
// Backend::sample and Backend::top_log_probs (backend.h); the math both share is in backend/sampling_math.h.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/sampling_math.h"

namespace kiln {

// The penalty and ban lists of a batch of rows (each row names its ranges in SampleRowParams).
struct SampleLists {
  const PenaltyEntry* penalties = nullptr;  // [num_penalties]
  int64_t num_penalties = 0;
  const int32_t* bans = nullptr;  // [num_bans]
  int64_t num_bans = 0;
};

// In place on x [V]: penalized() on the id of each of the row's penalty entries, then -inf on each of its banned
// ids (ids outside [0, V) are skipped).
void apply_penalties_and_bans(float* x, int64_t V, const SampleRowParams& p, const SampleLists& lists);

// The kept tokens of a sampled row (temperature > 0) in id order, with their weights exp((l - max) / T) and the
// sum z of the weights (in id order). Empty when every logit is -inf.
struct TokenDistribution {
  std::vector<int32_t> ids;
  std::vector<double> weights;
  double z = 0;
  double prob(size_t i) const { return weights[i] / z; }
};
TokenDistribution sampling_distribution(const float* logits, int64_t V, const SampleRowParams& p);

// The index (into d.ids) of the first token whose cumulative weight, in id order, exceeds u * z; the last token of
// positive weight when rounding leaves none.
size_t draw_index(const TokenDistribution& d, double u);

// log_softmax(logits)[id], in double.
double log_softmax_at(const float* logits, int64_t V, int32_t id);

// One row of Backend::sample over x [V], the row's private copy of its logits (penalties and bans are applied in
// place). id kNoToken when every logit is -inf.
SampledToken sample_row(float* x, int64_t V, const SampleRowParams& p, const SampleLists& lists);

// One row of Backend::top_log_probs: the k best processed log-probs of logits [V] into ids [k] and values [k]
// (lp [V] is scratch).
void top_log_probs_row(const float* logits, int64_t V, const SampleRowParams& p, const SampleLists& lists, int64_t k,
                       float* lp, int32_t* ids, float* values);

}  // namespace kiln
