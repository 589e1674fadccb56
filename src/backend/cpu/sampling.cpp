#include "backend/cpu/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace kiln {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A token in (logit desc, id asc) order: the order of every kept set.
struct Cand {
  uint32_t key;  // order_key(logit)
  int32_t id;
};
bool before(const Cand& a, const Cand& b) { return a.key > b.key || (a.key == b.key && a.id < b.id); }

// The largest value ignoring NaN (-inf when there is none).
float row_max(const float* x, int64_t V) {
  float mx = kNegInf;
  for (int64_t v = 0; v < V; ++v)
    if (x[v] > mx) mx = x[v];
  return mx;
}

}  // namespace

void apply_penalties_and_bans(float* x, int64_t V, const SampleRowParams& p, const SampleLists& lists) {
  for (int32_t i = p.pen_begin; i < p.pen_end; ++i) {
    const PenaltyEntry& e = lists.penalties[i];
    if (e.id >= 0 && e.id < V) x[e.id] = penalized(x[e.id], e.count, p);
  }
  for (int32_t i = p.ban_begin; i < p.ban_end; ++i) {
    const int32_t id = lists.bans[i];
    if (id >= 0 && id < V) x[id] = kNegInf;
  }
}

TokenDistribution sampling_distribution(const float* logits, int64_t V, const SampleRowParams& p) {
  if (!(p.temperature > 0)) fail("sampling_distribution: temperature {} must be positive", p.temperature);
  TokenDistribution d;
  const float mx = row_max(logits, V);
  if (mx == kNegInf) return d;
  const double inv_t = 1.0 / double(p.temperature);
  std::vector<Cand> cand;  // the tokens that can be chosen (finite logits)
  cand.reserve(size_t(V));
  for (int64_t v = 0; v < V; ++v)
    if (logits[v] > kNegInf) cand.push_back({order_key(logits[v]), int32_t(v)});
  auto weight = [&](const Cand& c) { return sample_weight(logits[c.id], mx, inv_t); };
  if (p.top_k > 0 && size_t(p.top_k) < cand.size()) {
    std::partial_sort(cand.begin(), cand.begin() + p.top_k, cand.end(), before);
    cand.resize(size_t(p.top_k));
  } else if (p.top_p < 1.0f) {
    std::sort(cand.begin(), cand.end(), before);
  }
  if (p.top_p < 1.0f) {  // cand is sorted: keep token i while the (renormalized) mass before it is below top_p
    double z = 0;
    for (const Cand& c : cand) z += weight(c);
    const double threshold = double(p.top_p) * z;
    double mass_before = 0;
    size_t keep = 0;
    while (keep < cand.size() && (keep == 0 || mass_before < threshold)) mass_before += weight(cand[keep++]);
    cand.resize(keep);
  }
  if (p.min_p > 0.0f) {  // relative to the most likely token, whose weight is exp(0) = 1 (always kept)
    const Cand first = *std::min_element(cand.begin(), cand.end(), before);
    const double threshold = double(p.min_p);
    cand.erase(std::remove_if(cand.begin(), cand.end(),
                              [&](const Cand& c) { return c.id != first.id && weight(c) < threshold; }),
               cand.end());
  }
  std::sort(cand.begin(), cand.end(), [](const Cand& a, const Cand& b) { return a.id < b.id; });
  d.ids.reserve(cand.size());
  d.weights.reserve(cand.size());
  for (const Cand& c : cand) {
    d.ids.push_back(c.id);
    d.weights.push_back(weight(c));
    d.z += d.weights.back();
  }
  return d;
}

size_t draw_index(const TokenDistribution& d, double u) {
  if (d.ids.empty()) fail("draw_index: empty distribution");
  const double x = u * d.z;
  double cum = 0;
  size_t last = 0;
  for (size_t i = 0; i < d.ids.size(); ++i) {
    if (d.weights[i] <= 0) continue;
    cum += d.weights[i];
    if (cum > x) return i;
    last = i;
  }
  return last;  // u * z at or past the total by rounding
}

double log_softmax_at(const float* logits, int64_t V, int32_t id) {
  const float mx = row_max(logits, V);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(double(logits[v]) - double(mx));
  return double(logits[id]) - double(mx) - std::log(sum);
}

SampledToken sample_row(float* x, int64_t V, const SampleRowParams& p, const SampleLists& lists) {
  apply_penalties_and_bans(x, V, p, lists);
  SampledToken t;
  if (!(p.temperature > 0)) {
    float best = kNegInf;
    for (int64_t v = 0; v < V; ++v)
      if (x[v] > best) {  // strict: the first maximum, as torch.argmax
        best = x[v];
        t.id = int32_t(v);
      }
    if (t.id != kNoToken && p.want_log_prob) t.log_prob = float(log_softmax_at(x, V, t.id));
    return t;
  }
  const TokenDistribution d = sampling_distribution(x, V, p);
  if (d.ids.empty()) return t;
  const size_t i = draw_index(d, seeded_uniform(p.seed, p.stream, p.counter));
  t.id = d.ids[i];
  t.log_prob = float(std::log(d.prob(i)));
  return t;
}

void top_log_probs_row(const float* logits, int64_t V, const SampleRowParams& p, const SampleLists& lists, int64_t k,
                       float* lp, int32_t* ids, float* values) {
  const float mx = row_max(logits, V);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(double(logits[v]) - double(mx));
  const double lse = double(mx) + std::log(sum);
  for (int64_t v = 0; v < V; ++v) lp[v] = float(double(logits[v]) - lse);
  // Logits processors act on the log-probs in transformers' beam search.
  apply_penalties_and_bans(lp, V, p, lists);
  std::vector<Cand> cand(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) cand[size_t(v)] = {order_key(lp[v]), int32_t(v)};
  std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), before);
  for (int64_t j = 0; j < k; ++j) {
    ids[j] = cand[size_t(j)].id;
    values[j] = lp[cand[size_t(j)].id];
  }
}

}  // namespace kiln
