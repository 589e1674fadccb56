#include "runtime/beam_search.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace kiln {

namespace {
constexpr double kNeg = -1.0e9;  // transformers' "very large negative" offset
}

BeamSearch::BeamSearch(BeamSearchParams p) : p_(std::move(p)) {
  if (p_.num_beams < 1) fail("beam search: num_beams {} must be at least 1", p_.num_beams);
  if (p_.num_return < 1 || p_.num_return > p_.num_beams)
    fail("beam search: num_return_sequences {} must be in [1, beam_width {}]", p_.num_return, p_.num_beams);
  if (p_.max_new_tokens < 1) fail("beam search: max_new_tokens {} must be at least 1", p_.max_new_tokens);
  running_.resize(1);  // the prompt
}

bool BeamSearch::ends_with_stop_sequence(const std::vector<int32_t>& tokens, int32_t token) const {
  for (const auto& s : p_.stop_sequences) {
    if (s.empty() || s.back() != token || s.size() > tokens.size() + 1) continue;
    if (std::equal(s.begin(), s.end() - 1, tokens.end() - ptrdiff_t(s.size() - 1))) return true;
  }
  return false;
}

FinishReason BeamSearch::stop_reason(const std::vector<int32_t>& tokens, int32_t token) const {
  if (std::find(p_.end_ids.begin(), p_.end_ids.end(), token) != p_.end_ids.end()) return FinishReason::Eos;
  if (ends_with_stop_sequence(tokens, token)) return FinishReason::Stop;
  if (generated_ + 1 >= p_.max_new_tokens) return FinishReason::Length;
  return FinishReason::None;
}

int64_t BeamSearch::candidates_per_row(int64_t V) const {
  return std::min<int64_t>(int64_t(std::max<size_t>(2, 1 + p_.end_ids.size())) * p_.num_beams, V);
}

std::vector<BeamSearch::Choice> BeamSearch::step(const BeamCandidates& c) {
  if (done_) fail("beam search: step after the search finished");
  if (c.rows != int32_t(running_.size()))
    fail("beam search: {} log-prob rows for {} running beams", c.rows, running_.size());
  const int32_t W = p_.num_beams;
  const int64_t V = c.vocab;
  const int64_t K = std::min<int64_t>(int64_t(std::max<size_t>(2, 1 + p_.end_ids.size())) * W, int64_t(W) * V);
  if (c.k < candidates_per_row(V) || c.stride < c.k)
    fail("beam search: {} candidates per row (stride {}), at least {} needed", c.k, c.stride, candidates_per_row(V));
  // Candidates over all num_beams beams, as transformers: before the first step every beam is the prompt and
  // beams 1.. carry score -1e9, so their candidates only matter when V is tiny. Each beam's K best (a row's
  // first K candidates) hold every candidate of the global K best.
  const int64_t per_row = std::min(c.k, V);
  struct Flat {
    double val;  // log-prob + the beam's running score
    int32_t beam, parent, token;
    float logp;
  };
  std::vector<Flat> all;
  all.reserve(size_t(W * per_row));
  for (int32_t b = 0; b < W; ++b) {
    const int32_t r = b < c.rows ? b : 0;
    const double score = b < c.rows ? running_[size_t(b)].score : kNeg;
    for (int64_t j = 0; j < per_row; ++j) {
      const float lp = c.log_probs[r * c.stride + j];
      all.push_back({double(lp) + score, b, r, c.ids[r * c.stride + j], lp});
    }
  }
  auto better = [](const Flat& a, const Flat& b) {
    return a.val > b.val || (a.val == b.val && (a.beam < b.beam || (a.beam == b.beam && a.token < b.token)));
  };
  std::partial_sort(all.begin(), all.begin() + K, all.end(), better);

  const int32_t gen_after = generated_ + 1;
  struct Cand {
    int32_t parent, token;
    double logp, total;  // this token's log-prob; the running sum including it
    FinishReason stop;  // None: the candidate can go on
  };
  std::vector<Cand> cand(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) {
    const Flat& f = all[size_t(k)];
    cand[k] = {f.parent, f.token, double(f.logp), f.val, FinishReason::None};
    cand[k].stop = stop_reason(running_[size_t(f.parent)].tokens, f.token);
  }

  // Finished hypotheses: candidates among the first num_beams that hit a stopping criterion.
  const bool full_and_eager = int32_t(finished_.size()) == W && p_.early_stopping == EarlyStopping::Eager;
  if (!full_and_eager && improvement_possible_) {
    std::vector<BeamHypothesis> merged = finished_;
    for (int64_t k = 0; k < std::min<int64_t>(K, W); ++k) {
      if (cand[k].stop == FinishReason::None) continue;
      const Beam& par = running_[size_t(cand[k].parent)];
      BeamHypothesis h;
      h.tokens = par.tokens;
      h.tokens.push_back(cand[k].token);
      h.log_probs = par.log_probs;
      h.log_probs.push_back(float(cand[k].logp));
      h.score = cand[k].total / std::pow(double(gen_after), double(p_.length_penalty));
      h.reason = cand[k].stop;
      merged.push_back(std::move(h));
    }
    std::stable_sort(merged.begin(), merged.end(),
                     [](const BeamHypothesis& a, const BeamHypothesis& b) { return a.score > b.score; });
    if (int32_t(merged.size()) > W) merged.resize(size_t(W));
    finished_ = std::move(merged);
  }

  // Next running beams: the best num_beams candidates, with -1e9 on those that stopped.
  std::vector<int64_t> order(static_cast<size_t>(K));
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> run(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) run[k] = cand[k].total + (cand[k].stop != FinishReason::None ? kNeg : 0.0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return run[a] > run[b]; });
  std::vector<Beam> next;
  std::vector<Choice> choices;
  for (int32_t i = 0; i < W && i < int32_t(K); ++i) {
    const Cand& c = cand[order[i]];
    Beam nb = running_[size_t(c.parent)];
    nb.tokens.push_back(c.token);
    nb.log_probs.push_back(float(c.logp));
    nb.score = run[order[i]];
    next.push_back(std::move(nb));
    choices.push_back({c.parent, c.token});
  }
  running_ = std::move(next);
  generated_ = gen_after;

  // transformers' _check_early_stop_heuristic and _beam_search_has_unfinished_sequences.
  const bool all_finished = int32_t(finished_.size()) == W;
  const double hyp_len = p_.early_stopping == EarlyStopping::Never && p_.length_penalty > 0 ? double(p_.max_new_tokens)
                                                                                            : double(generated_);
  const double best_running = running_[0].score / std::pow(hyp_len, double(p_.length_penalty));
  const double worst_finished = all_finished ? finished_.back().score : kNeg;
  improvement_possible_ = improvement_possible_ && best_running > worst_finished;
  const bool all_stop = std::all_of(cand.begin(), cand.end(), [](const Cand& c) { return c.stop != FinishReason::None; });
  done_ = !improvement_possible_ || (all_finished && p_.early_stopping == EarlyStopping::Eager) || all_stop;
  if (done_) return {};
  return choices;
}

std::vector<BeamHypothesis> BeamSearch::results() const {
  std::vector<BeamHypothesis> r(finished_.begin(),
                                finished_.begin() + std::min<ptrdiff_t>(ptrdiff_t(finished_.size()), p_.num_return));
  return r;
}

}  // namespace kiln
