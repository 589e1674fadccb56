// Beam search, step for step as transformers' (v4.50+) `_beam_search`, so that it returns the same sequences in
// the same order with the same scores:
//
//   - each step, every running beam's log-probs plus its running score give num_beams * V candidates; the
//     K = max(2, 1 + #end ids) * num_beams best are kept (ties: lower beam, then lower token first). These are
//     among the union of each beam's own K best (its score is the same for all its tokens), so a step needs
//     only each row's K best log-probs (Backend::top_log_probs), not whole rows;
//   - a candidate "hits a stopping criterion" if its token is an end id, it ends with a stop sequence, or it
//     reaches max_new_tokens; such candidates among the first num_beams become finished hypotheses with score
//     sum_logprobs / generated_length ^ length_penalty, and the best num_beams hypotheses are kept;
//   - the num_beams best candidates that did not stop are the next running beams;
//   - early stopping (EarlyStopping) decides when no running beam can beat the finished ones.
//
// This class is pure bookkeeping over log-prob candidates; the executor maps its choices onto KV blocks.
#pragma once
#include <cstdint>
#include <vector>

#include "kiln/request.h"

namespace kiln {

struct BeamSearchParams {
  int32_t num_beams = 1;
  int32_t num_return = 1;
  int32_t max_new_tokens = 1;
  float length_penalty = 1.0f;
  EarlyStopping early_stopping = EarlyStopping::Heuristic;
  std::vector<int32_t> end_ids;  // empty: no end id
  std::vector<std::vector<int32_t>> stop_sequences;
};

struct BeamHypothesis {
  std::vector<int32_t> tokens;   // generated ids (ending with the end id or stop sequence that finished it)
  std::vector<float> log_probs;  // each token's log-prob
  double score = 0;
  FinishReason reason = FinishReason::Length;
};

// The best candidates of each running beam's processed log-prob row: row r's k best (token, log-prob), best
// first (ties: lower token first), as Backend::top_log_probs gives them.
struct BeamCandidates {
  const int32_t* ids = nullptr;          // [rows, stride]
  const float* log_probs = nullptr;      // [rows, stride]
  int32_t rows = 0;
  int64_t k = 0;       // candidates used per row: at least candidates_per_row(vocab)
  int64_t stride = 0;  // >= k
  int64_t vocab = 0;
};

class BeamSearch {
 public:
  explicit BeamSearch(BeamSearchParams p);

  struct Choice {
    int32_t parent;  // row of the log-probs this beam continues
    int32_t token;
  };
  // The candidates each row must bring: min(K, V).
  int64_t candidates_per_row(int64_t V) const;
  // c: the candidates of each running beam (rows = 1 on the first step, when all beams are the prompt; then
  // num_beams). Returns the next running beams (num_beams choices), or nothing once the search is over (done()
  // is then true).
  std::vector<Choice> step(const BeamCandidates& c);
  bool done() const { return done_; }
  int32_t num_running() const { return int32_t(running_.size()); }
  int32_t generated() const { return generated_; }
  // The best num_return finished hypotheses, best first.
  std::vector<BeamHypothesis> results() const;

 private:
  struct Beam {
    std::vector<int32_t> tokens;
    std::vector<float> log_probs;
    double score = 0;  // running sum of log-probs (with -1e9 once it hit a stopping criterion)
  };
  bool ends_with_stop_sequence(const std::vector<int32_t>& tokens, int32_t token) const;
  // Why appending `token` to a running beam's `tokens` stops it (None: it does not).
  FinishReason stop_reason(const std::vector<int32_t>& tokens, int32_t token) const;

  BeamSearchParams p_;
  std::vector<Beam> running_;
  std::vector<BeamHypothesis> finished_;  // at most num_beams, best first
  bool improvement_possible_ = true;      // transformers' is_early_stop_heuristic_unsatisfied
  bool done_ = false;
  int32_t generated_ = 0;
};

}  // namespace kiln
