// Sampling on the host over F32 logits, one row per sequence, each with its own parameters.
//
// Order per row: repetition/presence/frequency penalties -> bad words -> greedy argmax (temperature 0), or
// temperature -> top-k -> top-p -> min-p -> a seeded draw. The random number for a draw depends only on
// (seed, stream, counter) -- the request's seed, the sequence's index within the request and the index of the
// token -- so a request gives the same output whatever else is in the batch, and after a preemption.
#pragma once
#include <cstdint>
#include <vector>

#include "kiln/request.h"

namespace kiln {

// In place on logits [V]: the repetition penalty on every token of `tokens` (prompt and output), presence and
// frequency penalties on the tokens of the output (tokens[prompt_len:]).
void apply_penalties(float* logits, int64_t V, const SamplingParams& p, const std::vector<int32_t>& tokens,
                     int32_t prompt_len);
// Sets logits [V] to -inf for every token that would complete a bad-word sequence after `tokens`.
void apply_bad_words(float* logits, int64_t V, const std::vector<std::vector<int32_t>>& bad_words,
                     const std::vector<int32_t>& tokens);

// The distribution a token is drawn from (temperature > 0): the surviving ids and their probabilities (sum 1).
struct TokenDistribution {
  std::vector<int32_t> ids;
  std::vector<double> probs;
};
TokenDistribution sampling_distribution(const float* logits, int64_t V, const SamplingParams& p);

// A uniform number in [0, 1) that is a pure function of its arguments.
double seeded_uniform(uint64_t seed, uint64_t stream, uint64_t counter);
// The index (into d.ids) at which the cumulative probability, in the distribution's order, first exceeds u.
size_t draw_index(const TokenDistribution& d, double u);

// log_softmax(logits)[id], in double.
double log_softmax_at(const float* logits, int64_t V, int32_t id);

struct SampleRow {
  float* logits = nullptr;                      // [V], modified in place (penalties, bad words)
  const SamplingParams* params = nullptr;
  const std::vector<int32_t>* tokens = nullptr;  // the sequence so far: prompt + output
  int32_t prompt_len = 0;
  const std::vector<std::vector<int32_t>>* bad_words = nullptr;
  uint64_t seed = 0, stream = 0, counter = 0;
  bool want_log_prob = true;  // greedy rows skip a softmax over the vocabulary without it
};

struct SampledToken {
  int32_t id = -1;
  // Log-probability of `id` in the distribution it was chosen from: log_softmax of the penalized logits for
  // greedy; the final (temperature-scaled, filtered, renormalized) distribution when sampling. 0 for a greedy
  // row that did not want it.
  float log_prob = 0;
};

SampledToken sample_row(const SampleRow& row, int64_t V);
// Every row of a step (rows are independent).
std::vector<SampledToken> sample_batch(const std::vector<SampleRow>& rows, int64_t V);

}  // namespace kiln
