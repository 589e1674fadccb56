// The host's part of sampling: per-row parameters for Backend::sample / top_log_probs, built from requests, and
// the buffers they travel in. The logits stay on the backend; only the chosen ids and log-probs (or the beam
// candidates) come back.
//
// Per row: the request's sampling parameters, a penalty list (each distinct token of prompt and output with the
// times it occurs in the output) and a ban list (the tokens that would complete a bad-word sequence: cheap on
// the host). The random number for a draw depends only on (seed, stream, counter) -- the request's seed, the
// sequence's index within the request and the index of the token -- so a request gives the same output whatever
// else is in the batch, and after a preemption.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "kiln/request.h"

namespace kiln {

// Appends the penalty entries of one sequence: every distinct token of `tokens` with the times it occurs in the
// output tokens[prompt_len:] (only the output's tokens when the repetition penalty is off; none when every
// penalty is off). Ids outside [0, V) are left out.
void append_penalty_entries(std::vector<PenaltyEntry>& out, const SamplingParams& p,
                            const std::vector<int32_t>& tokens, int32_t prompt_len, int64_t V);
// Appends the last token of every bad word whose other tokens end `tokens` (ids outside [0, V) left out).
void append_banned_ids(std::vector<int32_t>& out, const std::vector<std::vector<int32_t>>& bad_words,
                       const std::vector<int32_t>& tokens, int64_t V);

// The rows of one sample or top_log_probs call.
struct SampleBatch {
  std::vector<SampleRowParams> rows;    // [R]
  std::vector<PenaltyEntry> penalties;  // [N]
  std::vector<int32_t> bans;            // [M]

  // A row for a sequence `tokens` (prompt_len of them the prompt) that reads logits row `logits_row`: the
  // sampling parameters, penalties and bans of `r`. The caller sets seed, stream, counter and want_log_prob.
  SampleRowParams& add(int32_t logits_row, const Request& r, const std::vector<int32_t>& tokens, int32_t prompt_len,
                       int64_t V);
  size_t size() const { return rows.size(); }
};

// Why a row got no token (SampledToken::id or a candidate id < 0), for the request's error.
const char* no_token_reason(int32_t id);

// Runs SampleBatches on a backend through buffers kept between calls (grown on demand).
class BackendSampler {
 public:
  explicit BackendSampler(Backend& be) : be_(be) {}
  // Backend::sample over logits F32 [L, V]: one token per row.
  std::vector<SampledToken> sample(const Tensor& logits, const SampleBatch& b);
  // Backend::top_log_probs: the k best (id, processed log-prob) of each row, ids and values [R, k].
  void top_log_probs(const Tensor& logits, const SampleBatch& b, int64_t k, std::vector<int32_t>& ids,
                     std::vector<float>& values);

 private:
  // A view of `n` elements of `buf` (reallocated when too small) holding `data` when given.
  Tensor fit(Tensor& buf, DType dt, int64_t n, const void* data);
  void upload_lists(const SampleBatch& b, Tensor& rows, Tensor& penalties, Tensor& bans);

  Backend& be_;
  Tensor rows_, penalties_, bans_;  // U8 [R * sizeof(SampleRowParams)], I32 [N, 2], I32 [M]
  Tensor ids_, values_;             // I32 [R] or [R, k], F32 [R] or [R, k]
};

}  // namespace kiln
