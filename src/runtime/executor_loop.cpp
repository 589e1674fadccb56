// The executor's loop: take new requests and cancellations, schedule, run one forward step, sample (or advance
// beam search), stream responses, free what finished.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "runtime/executor_impl.h"
#include "runtime/sampling.h"

namespace kiln {

namespace {

FinishReason finish_reason(const SequenceGroup& g, const Sequence& s) {
  const int32_t tok = s.tokens.back();
  if (std::find(g.end_ids.begin(), g.end_ids.end(), tok) != g.end_ids.end()) return FinishReason::Eos;
  const size_t generated = size_t(s.len() - g.prompt_len);
  for (const auto& stop : g.req.stop_sequences)
    if (stop.size() <= generated && std::equal(stop.begin(), stop.end(), s.tokens.end() - ptrdiff_t(stop.size())))
      return FinishReason::Stop;
  if (int64_t(generated) >= g.req.max_new_tokens) return FinishReason::Length;
  return FinishReason::None;
}

void pad_outputs(Response& r, const Request& req) {
  if (!req.pad_id || r.output_ids.size() < 2) return;
  size_t longest = 0;
  for (auto& o : r.output_ids) longest = std::max(longest, o.size());
  for (auto& o : r.output_ids) o.resize(longest, *req.pad_id);
}

// out[v] = log_softmax(logits)[v], in double (as transformers' float32 log_softmax, to within rounding).
void log_softmax(const float* logits, int64_t V, float* out) {
  float mx = -INFINITY;
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, logits[v]);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(double(logits[v]) - double(mx));
  const double lse = double(mx) + std::log(sum);
  for (int64_t v = 0; v < V; ++v) out[v] = float(double(logits[v]) - lse);
}

}  // namespace

void Executor::Impl::loop() {
  for (;;) {
    std::vector<std::unique_ptr<SequenceGroup>> incoming;
    std::vector<RequestId> cancels;
    {
      std::unique_lock lk(mu_);
      work_cv_.wait(lk, [&] { return stop_ || !incoming_.empty() || !cancels_.empty() || sched_->has_work(); });
      if (stop_) return;
      incoming.swap(incoming_);
      cancels.swap(cancels_);
    }
    for (auto& g : incoming) {
      SequenceGroup* p = g.get();
      groups_[p->id] = std::move(g);
      sched_->add(p);
    }
    for (RequestId id : cancels) {
      auto it = groups_.find(id);
      if (it != groups_.end()) finish_group(*it->second, FinishReason::Cancelled, "");
    }
    try {
      if (sched_->has_work()) step();
    } catch (const std::exception& e) {
      // A failure outside one request's own work (a bug): fail every request rather than stop serving.
      std::vector<SequenceGroup*> all;
      for (auto& [id, g] : groups_) all.push_back(g.get());
      for (SequenceGroup* g : all) finish_group(*g, FinishReason::Error, fmt::format("executor step failed: {}", e.what()));
    }
    publish_stats();
  }
}

void Executor::Impl::step() {
  StepPlan plan = sched_->schedule();
  peak_used_ = std::max<int64_t>(peak_used_, blocks_->num_used());
  if (plan.items.empty()) {
    // Cannot happen while every accepted request fits the pool alone; fail rather than spin.
    if (SequenceGroup* g = sched_->oldest_waiting())
      finish_group(*g, FinishReason::Error, "the request could not be scheduled in an idle executor");
    return;
  }
  std::vector<SeqStep> steps;
  steps.reserve(plan.items.size());
  int64_t rows = 0;
  for (const auto& it : plan.items) {
    Sequence& s = it.group->seqs[it.seq];
    SeqStep st;
    st.tokens.assign(s.tokens.begin() + s.num_computed, s.tokens.begin() + s.num_computed + it.num_tokens);
    st.num_cached = s.num_computed;
    st.block_table = &s.blocks;
    st.want_logits = it.logits;
    rows += it.logits;
    steps.push_back(std::move(st));
  }
  try {
    Backend& be = engine_.backend();
    if (!plan.copies.empty()) be.copy_kv_blocks(runner_->cache(), plan.copies);
    Tensor logits = runner_->step(steps);
    if (rows > 0) {
      host_logits_.resize(size_t(rows * vocab_));  // [R, V]
      be.download(host_logits_.data(), logits, host_logits_.size() * sizeof(float));
    }
  } catch (const std::exception& e) {
    std::vector<SequenceGroup*> failed;
    for (const auto& it : plan.items)
      if (std::find(failed.begin(), failed.end(), it.group) == failed.end()) failed.push_back(it.group);
    for (SequenceGroup* g : failed) finish_group(*g, FinishReason::Error, fmt::format("forward step failed: {}", e.what()));
    return;
  }
  sched_->complete(plan);
  copied_ += int64_t(plan.copies.size());
  ++steps_;
  last_tokens_ = plan.num_tokens;
  total_tokens_ += plan.num_tokens;

  // A request's items are contiguous in the plan; its logits rows follow the items' order.
  size_t row = 0;
  for (size_t i = 0; i < plan.items.size();) {
    SequenceGroup* g = plan.items[i].group;
    std::vector<std::pair<int32_t, float*>> grows;  // (sequence index, logits [V])
    for (; i < plan.items.size() && plan.items[i].group == g; ++i)
      if (plan.items[i].logits) grows.push_back({plan.items[i].seq, host_logits_.data() + row++ * size_t(vocab_)});
    if (grows.empty()) continue;
    try {
      if (g->beam)
        beam_group(*g, grows);
      else
        sample_group(*g, grows);
    } catch (const std::exception& e) {
      finish_group(*g, FinishReason::Error, e.what());
    }
  }
}

void Executor::Impl::sample_group(SequenceGroup& g, const std::vector<std::pair<int32_t, float*>>& rows) {
  const Request& r = g.req;
  std::vector<std::pair<int32_t, float*>> todo = rows;
  std::vector<std::vector<float>> row_copies;  // [n - 1][V]
  if (!g.forked && g.num_seqs_max > 1) {
    // Independent samples: the prompt's logits start every sequence; they share the prompt's blocks.
    row_copies.reserve(size_t(g.num_seqs_max - 1));
    for (int32_t i = 1; i < g.num_seqs_max; ++i) {
      Sequence c = sched_->fork(g.seqs[0]);
      c.stream = i;
      g.seqs.push_back(std::move(c));
      row_copies.emplace_back(rows[0].second, rows[0].second + vocab_);
      todo.push_back({i, row_copies.back().data()});
    }
    g.forked = true;
  }
  std::vector<SampleRow> srows;
  srows.reserve(todo.size());
  for (auto [i, logits] : todo) {
    const Sequence& s = g.seqs[i];
    SampleRow sr;
    sr.logits = logits;
    sr.params = &r.sampling;
    sr.tokens = &s.tokens;
    sr.prompt_len = g.prompt_len;
    sr.bad_words = &r.bad_words;
    sr.seed = g.seed;
    sr.stream = uint64_t(s.stream);
    sr.counter = uint64_t(s.len() - g.prompt_len);
    sr.want_log_prob = r.return_log_probs;
    srows.push_back(sr);
  }
  const std::vector<SampledToken> picked = sample_batch(srows, vocab_);
  for (size_t k = 0; k < todo.size(); ++k) {
    Sequence& s = g.seqs[todo[k].first];
    s.tokens.push_back(picked[k].id);
    if (r.return_log_probs) s.log_probs.push_back(picked[k].log_prob);
    s.finish = finish_reason(g, s);
    if (s.finished()) sched_->release(s);
  }
  const bool done = std::all_of(g.seqs.begin(), g.seqs.end(), [](const Sequence& s) { return s.finished(); });
  if (done) {
    Response resp = progress_response(g, true);
    const RequestId id = g.id;
    sched_->remove(&g);
    groups_.erase(id);
    emit(std::move(resp));
  } else if (r.streaming) {
    emit(progress_response(g, false));
  }
}

void Executor::Impl::beam_group(SequenceGroup& g, const std::vector<std::pair<int32_t, float*>>& rows) {
  const Request& r = g.req;
  const bool penalties = r.sampling.repetition_penalty != 1.0f || r.sampling.presence_penalty != 0.0f ||
                         r.sampling.frequency_penalty != 0.0f;
  std::vector<float> lp(rows.size() * size_t(vocab_));  // [beams, V]
  for (size_t k = 0; k < rows.size(); ++k) {
    const Sequence& s = g.seqs[rows[k].first];
    float* dst = lp.data() + k * size_t(vocab_);
    log_softmax(rows[k].second, vocab_, dst);
    // Logits processors act on the log-probs in transformers' beam search.
    if (penalties) apply_penalties(dst, vocab_, r.sampling, s.tokens, g.prompt_len);
    if (!r.bad_words.empty()) apply_bad_words(dst, vocab_, r.bad_words, s.tokens);
  }
  // Each row's best candidates (value desc, ties: lower token), all BeamSearch needs.
  const int64_t k = g.beam->candidates_per_row(vocab_);
  std::vector<int32_t> ids(rows.size() * size_t(k));  // [beams, k]
  std::vector<float> vals(ids.size());                // [beams, k]
  std::vector<int32_t> order(static_cast<size_t>(vocab_));
  for (size_t b = 0; b < rows.size(); ++b) {
    const float* row = lp.data() + b * size_t(vocab_);
    for (int64_t v = 0; v < vocab_; ++v) order[size_t(v)] = int32_t(v);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t x, int32_t y) { return row[x] > row[y] || (row[x] == row[y] && x < y); });
    for (int64_t j = 0; j < k; ++j) {
      ids[b * size_t(k) + size_t(j)] = order[size_t(j)];
      vals[b * size_t(k) + size_t(j)] = row[order[size_t(j)]];
    }
  }
  BeamCandidates c;
  c.ids = ids.data();
  c.log_probs = vals.data();
  c.rows = int32_t(rows.size());
  c.k = c.stride = k;
  c.vocab = vocab_;
  const auto choices = g.beam->step(c);
  if (g.beam->done()) {
    Response resp;
    resp.request_id = g.id;
    resp.is_final = true;
    for (auto& h : g.beam->results()) {
      resp.output_ids.push_back(h.tokens);
      if (r.return_log_probs) resp.log_probs.push_back(h.log_probs);
      resp.scores.push_back(float(h.score));
      resp.finish_reasons.push_back(h.reason);
    }
    pad_outputs(resp, r);
    const RequestId id = g.id;
    sched_->remove(&g);
    groups_.erase(id);
    emit(std::move(resp));
    return;
  }
  // New running beams: each continues a parent's blocks (shared until written: copy-on-write).
  std::vector<Sequence> next;
  next.reserve(choices.size());
  for (size_t i = 0; i < choices.size(); ++i) {
    Sequence c = sched_->fork(g.seqs[rows[size_t(choices[i].parent)].first]);
    c.tokens.push_back(choices[i].token);
    c.stream = int32_t(i);
    next.push_back(std::move(c));
  }
  for (auto& s : g.seqs) sched_->release(s);
  g.seqs = std::move(next);
  g.forked = true;
}

Response Executor::Impl::progress_response(SequenceGroup& g, bool final) {
  const Request& r = g.req;
  Response resp;
  resp.request_id = g.id;
  resp.is_final = final;
  const int32_t n = g.beam ? r.num_return_sequences : g.num_seqs_max;
  for (int32_t i = 0; i < n; ++i) {
    if (g.beam || i >= int32_t(g.seqs.size())) {  // nothing to show yet (beams report only when done)
      resp.output_ids.emplace_back();
      if (r.return_log_probs) resp.log_probs.emplace_back();
      resp.finish_reasons.push_back(final ? g.seqs[0].finish : FinishReason::None);
      continue;
    }
    Sequence& s = g.seqs[i];
    const size_t from = r.streaming ? s.sent : 0;
    const size_t generated = size_t(s.len() - g.prompt_len);
    resp.output_ids.emplace_back(s.tokens.begin() + g.prompt_len + ptrdiff_t(from), s.tokens.end());
    if (r.return_log_probs) resp.log_probs.emplace_back(s.log_probs.begin() + ptrdiff_t(from), s.log_probs.end());
    resp.finish_reasons.push_back(s.finish);
    s.sent = generated;
  }
  if (final && !r.streaming) pad_outputs(resp, r);
  return resp;
}

void Executor::Impl::finish_group(SequenceGroup& g, FinishReason reason, const std::string& error) {
  for (auto& s : g.seqs)
    if (!s.finished()) s.finish = reason;
  Response resp = progress_response(g, true);
  resp.error = error;
  const RequestId id = g.id;
  sched_->remove(&g);
  groups_.erase(id);
  emit(std::move(resp));
}

void Executor::Impl::publish_stats() {
  std::lock_guard lk(mu_);
  fill_stats_locked();
}

void Executor::Impl::fill_stats_locked() {
  stats_.running_requests = sched_->num_running();
  stats_.queued_requests = sched_->num_waiting() + int64_t(incoming_.size());
  stats_.kv_blocks_used = blocks_->num_used();
  stats_.kv_blocks_free = blocks_->num_blocks() - blocks_->num_used();
  stats_.kv_blocks_cached = blocks_->num_cached();
  stats_.kv_blocks_peak = peak_used_;
  stats_.reused_blocks = sched_->reused_blocks();
  stats_.preemptions = sched_->preemptions();
  stats_.copied_blocks = copied_;
  stats_.steps = steps_;
  stats_.last_step_tokens = last_tokens_;
  stats_.total_step_tokens = total_tokens_;
  stats_.mean_tokens_per_step = steps_ ? double(total_tokens_) / double(steps_) : 0.0;
}

}  // namespace kiln
