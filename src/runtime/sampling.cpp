#include "runtime/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "core/error.h"

namespace kiln {

namespace {

uint64_t mix64(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

bool has_penalties(const SamplingParams& p) {
  return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
}

}  // namespace

void apply_penalties(float* logits, int64_t V, const SamplingParams& p, const std::vector<int32_t>& tokens,
                     int32_t prompt_len) {
  if (p.repetition_penalty != 1.0f) {
    std::vector<int32_t> seen(tokens);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    const float r = p.repetition_penalty;
    for (int32_t id : seen) {
      if (id < 0 || id >= V) continue;
      float& l = logits[id];
      l = l > 0 ? l / r : l * r;
    }
  }
  if (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    std::vector<int32_t> out(tokens.begin() + std::min<size_t>(size_t(prompt_len), tokens.size()), tokens.end());
    std::sort(out.begin(), out.end());
    for (size_t i = 0; i < out.size();) {
      size_t j = i;
      while (j < out.size() && out[j] == out[i]) ++j;
      const int32_t id = out[i];
      if (id >= 0 && id < V) logits[id] -= p.presence_penalty + p.frequency_penalty * float(j - i);
      i = j;
    }
  }
}

void apply_bad_words(float* logits, int64_t V, const std::vector<std::vector<int32_t>>& bad_words,
                     const std::vector<int32_t>& tokens) {
  for (const auto& w : bad_words) {
    if (w.empty()) continue;
    const size_t prefix = w.size() - 1;
    if (tokens.size() < prefix) continue;
    if (!std::equal(w.begin(), w.begin() + ptrdiff_t(prefix), tokens.end() - ptrdiff_t(prefix))) continue;
    if (w.back() >= 0 && w.back() < V) logits[w.back()] = -std::numeric_limits<float>::infinity();
  }
}

TokenDistribution sampling_distribution(const float* logits, int64_t V, const SamplingParams& p) {
  if (!(p.temperature > 0)) fail("sampling_distribution: temperature {} must be positive", p.temperature);
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, logits[v]);
  if (!std::isfinite(mx)) fail("no token can be sampled: every logit is -inf (bad_words exclude them all?)");
  // (unnormalized probability, id) of every token that can be chosen: exp((logit - max) / temperature)
  std::vector<std::pair<double, int32_t>> cand;
  cand.reserve(size_t(V));
  const double inv_t = 1.0 / double(p.temperature);
  for (int64_t v = 0; v < V; ++v)
    if (logits[v] != -std::numeric_limits<float>::infinity())
      cand.push_back({std::exp((double(logits[v]) - double(mx)) * inv_t), int32_t(v)});
  auto more_likely = [](const std::pair<double, int32_t>& a, const std::pair<double, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  const bool filtered = p.top_k > 0 || p.top_p < 1.0f || p.min_p > 0.0f;
  if (p.top_k > 0 && size_t(p.top_k) < cand.size()) {
    std::partial_sort(cand.begin(), cand.begin() + p.top_k, cand.end(), more_likely);
    cand.resize(size_t(p.top_k));
  } else if (filtered) {
    std::sort(cand.begin(), cand.end(), more_likely);
  }
  if (p.top_p < 1.0f) {  // keep token i while the (renormalized) probability before it is below top_p
    double z = 0;
    for (auto& c : cand) z += c.first;
    double before = 0;
    size_t keep = 0;
    while (keep < cand.size() && (keep == 0 || before < double(p.top_p) * z)) before += cand[keep++].first;
    cand.resize(keep);
  }
  if (p.min_p > 0.0f) {  // cand[0] is the most likely token
    const double threshold = double(p.min_p) * cand[0].first;
    size_t keep = 1;
    while (keep < cand.size() && cand[keep].first >= threshold) ++keep;
    cand.resize(keep);
  }
  double z = 0;
  for (auto& c : cand) z += c.first;
  TokenDistribution d;
  d.ids.reserve(cand.size());
  d.probs.reserve(cand.size());
  for (auto& c : cand) {
    d.ids.push_back(c.second);
    d.probs.push_back(c.first / z);
  }
  return d;
}

double seeded_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
  uint64_t x = mix64(seed);
  x = mix64(x ^ (stream * 0xd1b54a32d192ed03ULL));
  x = mix64(x ^ (counter * 0xaef17502108ef2d9ULL));
  return double(x >> 11) * 0x1.0p-53;
}

size_t draw_index(const TokenDistribution& d, double u) {
  if (d.ids.empty()) fail("draw_index: empty distribution");
  double cum = 0;
  for (size_t i = 0; i + 1 < d.ids.size(); ++i) {
    cum += d.probs[i];
    if (u < cum) return i;
  }
  return d.ids.size() - 1;  // the last one (also absorbs rounding when u is close to 1)
}

double log_softmax_at(const float* logits, int64_t V, int32_t id) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, logits[v]);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(double(logits[v]) - double(mx));
  return double(logits[id]) - double(mx) - std::log(sum);
}

SampledToken sample_row(const SampleRow& r, int64_t V) {
  const SamplingParams& p = *r.params;
  if (has_penalties(p)) apply_penalties(r.logits, V, p, *r.tokens, r.prompt_len);
  if (r.bad_words && !r.bad_words->empty()) apply_bad_words(r.logits, V, *r.bad_words, *r.tokens);
  SampledToken t;
  if (!(p.temperature > 0)) {
    const float* best = std::max_element(r.logits, r.logits + V);  // first maximum, as torch.argmax
    if (*best == -std::numeric_limits<float>::infinity())
      fail("no token can be chosen: every logit is -inf (bad_words exclude them all?)");
    t.id = int32_t(best - r.logits);
    if (r.want_log_prob) t.log_prob = float(log_softmax_at(r.logits, V, t.id));
    return t;
  }
  TokenDistribution d = sampling_distribution(r.logits, V, p);
  const size_t i = draw_index(d, seeded_uniform(r.seed, r.stream, r.counter));
  t.id = d.ids[i];
  t.log_prob = float(std::log(d.probs[i]));
  return t;
}

std::vector<SampledToken> sample_batch(const std::vector<SampleRow>& rows, int64_t V) {
  std::vector<SampledToken> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(sample_row(r, V));
  return out;
}

}  // namespace kiln
