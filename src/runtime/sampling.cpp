#include "runtime/sampling.h"

#include <algorithm>

#include "core/error.h"

namespace kiln {

void append_penalty_entries(std::vector<PenaltyEntry>& out, const SamplingParams& p,
                            const std::vector<int32_t>& tokens, int32_t prompt_len, int64_t V) {
  const bool repetition = p.repetition_penalty != 1.0f;
  if (!repetition && p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f) return;
  const size_t output = std::min<size_t>(size_t(std::max(prompt_len, 0)), tokens.size());
  std::vector<std::pair<int32_t, int32_t>> seen;  // (id, 1 for an output token); sorted: the ids run together
  seen.reserve(tokens.size());
  for (size_t i = repetition ? 0 : output; i < tokens.size(); ++i)
    if (tokens[i] >= 0 && tokens[i] < V) seen.push_back({tokens[i], i >= output ? 1 : 0});
  std::sort(seen.begin(), seen.end());
  for (size_t i = 0; i < seen.size();) {
    PenaltyEntry e{seen[i].first, 0};
    for (; i < seen.size() && seen[i].first == e.id; ++i) e.count += seen[i].second;
    out.push_back(e);
  }
}

void append_banned_ids(std::vector<int32_t>& out, const std::vector<std::vector<int32_t>>& bad_words,
                       const std::vector<int32_t>& tokens, int64_t V) {
  for (const auto& w : bad_words) {
    if (w.empty() || w.back() < 0 || w.back() >= V) continue;
    const size_t prefix = w.size() - 1;
    if (tokens.size() < prefix) continue;
    if (std::equal(w.begin(), w.begin() + ptrdiff_t(prefix), tokens.end() - ptrdiff_t(prefix))) out.push_back(w.back());
  }
}

SampleRowParams& SampleBatch::add(int32_t logits_row, const Request& r, const std::vector<int32_t>& tokens,
                                  int32_t prompt_len, int64_t V) {
  const SamplingParams& s = r.sampling;
  SampleRowParams p;
  p.temperature = s.temperature;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.min_p = s.min_p;
  p.repetition_penalty = s.repetition_penalty;
  p.presence_penalty = s.presence_penalty;
  p.frequency_penalty = s.frequency_penalty;
  p.logits_row = logits_row;
  p.pen_begin = int32_t(penalties.size());
  append_penalty_entries(penalties, s, tokens, prompt_len, V);
  p.pen_end = int32_t(penalties.size());
  p.ban_begin = int32_t(bans.size());
  append_banned_ids(bans, r.bad_words, tokens, V);
  p.ban_end = int32_t(bans.size());
  rows.push_back(p);
  return rows.back();
}

const char* no_token_reason(int32_t id) {
  return id == kNoToken ? "no token can be sampled: every logit is -inf or NaN (bad_words exclude them all, or the "
                          "model computed non-finite values)"
                        : "sampling failed: the backend rejected the row's parameters";
}

Tensor BackendSampler::fit(Tensor& buf, DType dt, int64_t n, const void* data) {
  if (buf.empty() || buf.dtype != dt || buf.numel() < n) buf = be_.alloc(dt, {std::max<int64_t>(2 * n, 64)});
  Tensor t = buf.reshaped({n});
  if (data && n > 0) be_.upload(t, data, t.nbytes());
  return t;
}

void BackendSampler::upload_lists(const SampleBatch& b, Tensor& rows, Tensor& penalties, Tensor& bans) {
  rows = fit(rows_, DType::U8, int64_t(b.rows.size() * sizeof(SampleRowParams)), b.rows.data());
  if (!b.penalties.empty())
    penalties = fit(penalties_, DType::I32, int64_t(2 * b.penalties.size()), b.penalties.data())
                    .reshaped({int64_t(b.penalties.size()), 2});
  if (!b.bans.empty()) bans = fit(bans_, DType::I32, int64_t(b.bans.size()), b.bans.data());
}

std::vector<SampledToken> BackendSampler::sample(const Tensor& logits, const SampleBatch& b) {
  const int64_t R = int64_t(b.size());
  if (R == 0) return {};
  SampleParams p;
  p.logits = logits;
  upload_lists(b, p.rows, p.penalties, p.bans);
  p.ids = fit(ids_, DType::I32, R, nullptr);
  p.log_probs = fit(values_, DType::F32, R, nullptr);
  be_.sample(p);
  std::vector<int32_t> ids(static_cast<size_t>(R));
  std::vector<float> lp(static_cast<size_t>(R));
  be_.download(ids.data(), p.ids, ids.size() * sizeof(int32_t));
  be_.download(lp.data(), p.log_probs, lp.size() * sizeof(float));
  std::vector<SampledToken> out(static_cast<size_t>(R));
  for (size_t i = 0; i < out.size(); ++i) out[i] = {ids[i], lp[i]};
  return out;
}

void BackendSampler::top_log_probs(const Tensor& logits, const SampleBatch& b, int64_t k, std::vector<int32_t>& ids,
                                   std::vector<float>& values) {
  const int64_t R = int64_t(b.size());
  ids.assign(size_t(R * k), 0);
  values.assign(size_t(R * k), 0.0f);
  if (R == 0) return;
  TopLogProbsParams p;
  p.logits = logits;
  upload_lists(b, p.rows, p.penalties, p.bans);
  p.k = k;
  p.ids = fit(ids_, DType::I32, R * k, nullptr).reshaped({R, k});
  p.values = fit(values_, DType::F32, R * k, nullptr).reshaped({R, k});
  be_.top_log_probs(p);
  be_.download(ids.data(), p.ids, ids.size() * sizeof(int32_t));
  be_.download(values.data(), p.values, values.size() * sizeof(float));
}

}  // namespace kiln
