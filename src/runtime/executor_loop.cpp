// The executor's loop: take new requests and cancellations, schedule, run one forward step, sample (or advance
// beam search), stream responses, free what finished.
#include <algorithm>

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
  run_plan(std::move(plan));
}

void Executor::Impl::run_plan(StepPlan plan) {
  for (;;) {
    if (!greedy_plan(plan)) return run_sampled(plan);
    std::optional<StepPlan> next = greedy_chain(std::move(plan));
    if (!next || next->items.empty()) return;
    plan = std::move(*next);
  }
}

SeqStep Executor::Impl::seq_step(const StepItem& it) {
  Sequence& s = it.group->seqs[size_t(it.seq)];
  SeqStep st;
  st.tokens.assign(s.tokens.begin() + s.num_computed, s.tokens.begin() + s.num_computed + it.num_tokens);
  st.num_cached = s.num_computed;
  st.block_table = &s.blocks;
  st.want_logits = it.logits;
  return st;
}

void Executor::Impl::count_step(const StepPlan& plan) {
  copied_ += int64_t(plan.copies.size());
  ++steps_;
  last_tokens_ = plan.num_tokens;
  total_tokens_ += plan.num_tokens;
}

void Executor::Impl::run_sampled(const StepPlan& plan) {
  std::vector<SeqStep> steps;
  steps.reserve(plan.items.size());
  std::vector<int32_t> first_rows, item_rows;  // per item: its first logits row, the row it samples from (or -1)
  int32_t rows = 0;
  bool any_logits = false;
  for (const auto& it : plan.items) {
    const Sequence& s = it.group->seqs[it.seq];
    const Request& r = it.group->req;
    SeqStep st = seq_step(it);
    st.all_logits = r.return_context_logits && s.num_computed < it.group->prompt_len;
    first_rows.push_back(rows);
    rows += st.all_logits ? it.num_tokens : int32_t(it.logits);
    item_rows.push_back(it.logits ? rows - 1 : -1);
    any_logits |= r.return_context_logits || r.return_generation_logits;
    steps.push_back(std::move(st));
  }
  Tensor logits;  // F32 [rows, V] on the backend: it comes to the host only for requests that ask for it
  try {
    Backend& be = engine_.backend();
    if (!plan.copies.empty()) be.copy_kv_blocks(runner_->cache(), plan.copies);
    logits = runner_->step(steps);
  } catch (const std::exception& e) {
    fail_plan(plan, fmt::format("forward step failed: {}", e.what()));
    return;
  }
  sched_->complete(plan);
  count_step(plan);
  if (rows == 0) return;
  if (any_logits) {
    try {
      keep_logits(plan, logits, first_rows, item_rows);
    } catch (const std::exception& e) {
      fail_plan(plan, fmt::format("logits download failed: {}", e.what()));
      return;
    }
  }
  choose_tokens(plan, logits, item_rows);
}

void Executor::Impl::keep_logits(const StepPlan& plan, const Tensor& logits, const std::vector<int32_t>& first_rows,
                                 const std::vector<int32_t>& item_rows) {
  Backend& be = engine_.backend();
  const size_t V = size_t(vocab_);
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const StepItem& it = plan.items[i];
    SequenceGroup& g = *it.group;
    const Request& r = g.req;
    if (!r.return_context_logits && !r.return_generation_logits) continue;
    const Sequence& s = g.seqs[size_t(it.seq)];
    // This step ran positions [s.num_computed - it.num_tokens, s.num_computed) (complete() has advanced it).
    const int32_t from = s.num_computed - it.num_tokens;
    const int32_t n = item_rows[i] >= 0 ? item_rows[i] - first_rows[i] + 1 : 0;
    const bool all = r.return_context_logits && from < g.prompt_len;
    const int32_t count = all ? it.num_tokens : n;
    if (count == 0) continue;
    std::vector<float> host(size_t(count) * V);  // [count, V]
    be.download(host.data(), logits.rows(first_rows[i], first_rows[i] + count), host.size() * 4);
    if (all) {
      // Context rows of prompt positions not kept yet (a preempted request recomputes its prompt).
      for (int32_t j = 0; j < count; ++j) {
        const int64_t pos = from + j;
        if (pos < g.prompt_len && int64_t(g.context_logits.size() / V) == pos)
          g.context_logits.insert(g.context_logits.end(), host.begin() + ptrdiff_t(j * V),
                                  host.begin() + ptrdiff_t((j + 1) * V));
      }
    }
    if (r.return_generation_logits && item_rows[i] >= 0)
      g.generation_logits.insert(g.generation_logits.end(), host.end() - ptrdiff_t(V), host.end());
  }
}

void Executor::Impl::fail_plan(const StepPlan& plan, const std::string& error) {
  std::vector<SequenceGroup*> failed;
  for (const auto& it : plan.items)
    if (std::find(failed.begin(), failed.end(), it.group) == failed.end()) failed.push_back(it.group);
  for (SequenceGroup* g : failed) finish_group(*g, FinishReason::Error, error);
}

void Executor::Impl::choose_tokens(const StepPlan& plan, const Tensor& logits, const std::vector<int32_t>& item_rows) {
  // A request's items are contiguous in the plan; its logits rows follow the items' order. Sampled groups
  // become rows of one Backend::sample call, beam groups rows of one top_log_probs call.
  std::vector<GroupRows> groups;
  SampleBatch samples, beams;
  int64_t k = 0;  // beam candidates per row: the most any beam group needs
  for (size_t i = 0; i < plan.items.size();) {
    GroupRows gr;
    gr.g = plan.items[i].group;
    for (; i < plan.items.size() && plan.items[i].group == gr.g; ++i)
      if (item_rows[i] >= 0) gr.rows.push_back({plan.items[i].seq, item_rows[i]});
    if (gr.rows.empty()) continue;
    SequenceGroup& g = *gr.g;
    const Request& r = g.req;
    if (g.beam) {
      gr.first = beams.size();
      for (auto [seq, lrow] : gr.rows) beams.add(lrow, r, g.seqs[size_t(seq)].tokens, g.prompt_len, vocab_);
      k = std::max(k, g.beam->candidates_per_row(vocab_));
    } else {
      if (!g.forked && g.num_seqs_max > 1) {
        // Independent samples: the prompt's logits row starts every sequence; they share the prompt's blocks.
        for (int32_t j = 1; j < g.num_seqs_max; ++j) {
          Sequence c = sched_->fork(g.seqs[0]);
          c.stream = j;
          g.seqs.push_back(std::move(c));
          gr.rows.push_back({j, gr.rows[0].second});
        }
        g.forked = true;
      }
      gr.first = samples.size();
      for (auto [seq, lrow] : gr.rows) {
        const Sequence& s = g.seqs[size_t(seq)];
        SampleRowParams& p = samples.add(lrow, r, s.tokens, g.prompt_len, vocab_);
        p.seed = g.seed;
        p.stream = uint64_t(s.stream);
        p.counter = uint64_t(s.len() - g.prompt_len);
        p.want_log_prob = r.return_log_probs;
      }
    }
    groups.push_back(std::move(gr));
  }
  std::vector<SampledToken> picked;
  std::vector<int32_t> cand_ids;  // [beam rows, k]
  std::vector<float> cand_lp;     // [beam rows, k]
  try {
    picked = sampler_->sample(logits, samples);
    if (beams.size() > 0) sampler_->top_log_probs(logits, beams, k, cand_ids, cand_lp);
  } catch (const std::exception& e) {
    fail_plan(plan, fmt::format("sampling failed: {}", e.what()));
    return;
  }
  for (const GroupRows& gr : groups) {
    try {
      if (gr.g->beam) {
        BeamCandidates c;
        c.ids = cand_ids.data() + gr.first * size_t(k);
        c.log_probs = cand_lp.data() + gr.first * size_t(k);
        c.rows = int32_t(gr.rows.size());
        c.k = c.stride = k;
        c.vocab = vocab_;
        beam_group(*gr.g, gr, c);
      } else {
        sample_group(*gr.g, gr, picked.data() + gr.first);
      }
    } catch (const std::exception& e) {
      finish_group(*gr.g, FinishReason::Error, e.what());
    }
  }
}

void Executor::Impl::sample_group(SequenceGroup& g, const GroupRows& gr, const SampledToken* picked) {
  const Request& r = g.req;
  for (size_t k = 0; k < gr.rows.size(); ++k)
    if (picked[k].id < 0) fail("{}", no_token_reason(picked[k].id));
  for (size_t k = 0; k < gr.rows.size(); ++k) {
    Sequence& s = g.seqs[size_t(gr.rows[k].first)];
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

void Executor::Impl::beam_group(SequenceGroup& g, const GroupRows& gr, const BeamCandidates& c) {
  const Request& r = g.req;
  for (int64_t i = 0; i < int64_t(c.rows) * c.stride; ++i)
    if (c.ids[i] < 0) fail("{}", no_token_reason(c.ids[i]));
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
    Sequence c = sched_->fork(g.seqs[size_t(gr.rows[size_t(choices[i].parent)].first)]);
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
  if (g.ever_admitted && !g.queue_time_sent) {
    resp.queue_time_s = std::chrono::duration<double>(g.first_admitted - g.enqueued).count();
    g.queue_time_sent = true;
  }
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
  if (final) {
    resp.context_logits = std::move(g.context_logits);
    resp.generation_logits = std::move(g.generation_logits);
  }
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
