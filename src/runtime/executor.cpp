// Executor: set-up (KV pool sizing) and the caller side (enqueue, cancel, await_responses, stats).
#include "kiln/executor.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/executor_impl.h"
#include "runtime/kv_cache.h"

namespace kiln {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None: return "";
    case FinishReason::Length: return "length";
    case FinishReason::Stop: return "stop";
    case FinishReason::Eos: return "eos";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "";
}

SchedulerPolicy scheduler_policy_from_name(const std::string& name) {
  if (name == "guaranteed_no_evict") return SchedulerPolicy::GuaranteedNoEvict;
  if (name == "max_utilization") return SchedulerPolicy::MaxUtilization;
  fail("scheduler policy '{}': expected guaranteed_no_evict or max_utilization", name);
}

const char* scheduler_policy_name(SchedulerPolicy p) {
  return p == SchedulerPolicy::GuaranteedNoEvict ? "guaranteed_no_evict" : "max_utilization";
}

namespace {

// Blocks in the pool: the byte cap when given, else a fraction of free memory (capped at twice what
// max_batch_size sequences of max_seq_len tokens can use; the rest would only ever serve the prefix cache).
int64_t pool_blocks(const ExecutorConfig& c, Engine& e, int64_t max_batch_size) {
  const int64_t tpb = c.tokens_per_block;
  const int64_t block = int64_t(kv_block_bytes(e.model(), e.backend().compute_dtype(), tpb));
  if (c.kv_cache_bytes) {
    if (size_t(std::max<int64_t>(*c.kv_cache_bytes, 0)) > e.backend().free_memory())
      fail("--kv-cache-bytes {}: more than the backend's {} bytes of free memory", *c.kv_cache_bytes,
           e.backend().free_memory());
    if (*c.kv_cache_bytes < block)
      fail("--kv-cache-bytes {}: smaller than one KV block ({} bytes at {} tokens per block)", *c.kv_cache_bytes, block,
           tpb);
    return *c.kv_cache_bytes / block;
  }
  if (!(c.kv_cache_fraction > 0 && c.kv_cache_fraction <= 1))
    fail("--kv-cache-fraction {}: must be in (0, 1]", c.kv_cache_fraction);
  const int64_t per_seq = (e.limits().max_seq_len + tpb - 1) / tpb;
  const int64_t by_memory = int64_t(c.kv_cache_fraction * double(e.backend().free_memory())) / block;
  const int64_t n = std::min(by_memory, 2 * max_batch_size * per_seq);
  if (n < 1)
    fail("--kv-cache-fraction {}: {} bytes of free memory hold no KV block ({} bytes)", c.kv_cache_fraction,
         e.backend().free_memory(), block);
  return n;
}

}  // namespace

Executor::Impl::Impl(Engine& engine, std::unique_ptr<Engine> owned, const ExecutorConfig& cfg)
    : owned_(std::move(owned)), engine_(engine), cfg_(cfg) {
  const EngineLimits& el = engine_.limits();
  if (cfg_.tokens_per_block < 1 || cfg_.tokens_per_block > kMaxTokensPerBlock)
    fail("--tokens-per-block {}: must be in [1, {}]", cfg_.tokens_per_block, kMaxTokensPerBlock);
  if (cfg_.max_num_tokens < 0 || cfg_.max_num_tokens > el.max_num_tokens)
    fail("--max-num-tokens {}: must be in [1, {}] (the engine's max_num_tokens)", cfg_.max_num_tokens,
         el.max_num_tokens);
  if (cfg_.max_batch_size < 0 || cfg_.max_batch_size > el.max_batch_size)
    fail("--max-batch-size {}: must be in [1, {}] (the engine's max_batch_size)", cfg_.max_batch_size,
         el.max_batch_size);
  SchedulerConfig sc;
  sc.policy = cfg_.policy;
  sc.max_num_tokens = cfg_.max_num_tokens ? cfg_.max_num_tokens : el.max_num_tokens;
  sc.max_batch_size = cfg_.max_batch_size ? cfg_.max_batch_size : el.max_batch_size;
  sc.prefix_reuse = cfg_.enable_prefix_reuse;
  const int64_t num_blocks = pool_blocks(cfg_, engine_, sc.max_batch_size);
  if (num_blocks > INT32_MAX) fail("KV cache: {} blocks is more than the block table can address", num_blocks);

  vocab_ = engine_.model().vocab_size;
  limits_.vocab_size = vocab_;
  limits_.max_input_len = el.max_input_len;
  limits_.max_seq_len = el.max_seq_len;
  limits_.max_beam_width = el.max_beam_width;
  limits_.max_seqs_per_step = std::min(sc.max_batch_size, sc.max_num_tokens);
  limits_.num_kv_blocks = num_blocks;
  limits_.tokens_per_block = cfg_.tokens_per_block;

  runner_ = std::make_unique<ModelRunner>(
      engine_, allocate_kv_cache(engine_.backend(), engine_.model(), num_blocks, cfg_.tokens_per_block,
                                 kv_cache_scales(engine_)));
  sampler_ = std::make_unique<BackendSampler>(engine_.backend());
  blocks_ = std::make_unique<BlockManager>(int32_t(num_blocks), cfg_.tokens_per_block);
  sched_ = std::make_unique<Scheduler>(sc, *blocks_);
  stats_.kv_blocks_total = num_blocks;
  stats_.kv_blocks_free = num_blocks;
  stats_.tokens_per_block = cfg_.tokens_per_block;
  warm_up();
  thread_ = std::thread([this] {
    engine_.backend().bind_thread();  // the rank's device on this thread too
    loop();
  });
}

Executor::Impl::~Impl() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    any_cv_.notify_all();
    for (auto& [id, cv] : id_waiters_) cv->notify_all();
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

namespace {

BeamSearchParams beam_params(const Request& r, const std::vector<int32_t>& end_ids) {
  BeamSearchParams bp;
  bp.num_beams = r.beam_width;
  bp.num_return = r.num_return_sequences;
  bp.max_new_tokens = r.max_new_tokens;
  bp.length_penalty = r.sampling.length_penalty;
  bp.early_stopping = r.sampling.early_stopping;
  bp.end_ids = end_ids;
  bp.stop_sequences = r.stop_sequences;
  return bp;
}

}  // namespace

int64_t Executor::Impl::check(const Request& r) const {
  const int32_t nseq = request_num_seqs(r);
  const int64_t worst = sched_->worst_case_blocks(std::max(nseq, 1), int64_t(r.input_ids.size()), r.max_new_tokens);
  check_request(r, limits_, worst);
  if (r.beam_width > 1) {
    const std::vector<int32_t> end_ids = effective_end_ids(r, engine_.model().eos_token_ids);
    const BeamSearch beam(beam_params(r, end_ids));
    if (beam.candidates_per_row(vocab_) > kMaxTopLogProbs)
      fail("beam_width {} with {} end ids needs {} candidates per beam; at most {}", r.beam_width, end_ids.size(),
           beam.candidates_per_row(vocab_), kMaxTopLogProbs);
  }
  return worst;
}

RequestId Executor::Impl::enqueue(const Request& r, ResponseCallback cb) {
  const int64_t worst = check(r);
  auto g = std::make_unique<SequenceGroup>();
  g->req = r;
  g->prompt_len = int32_t(r.input_ids.size());
  g->end_ids = effective_end_ids(r, engine_.model().eos_token_ids);
  g->num_seqs_max = request_num_seqs(r);
  g->worst_case_blocks = worst;
  Sequence s;
  s.tokens = r.input_ids;
  g->seqs.push_back(std::move(s));
  if (r.beam_width > 1) g->beam = std::make_unique<BeamSearch>(beam_params(r, g->end_ids));
  RequestId id;
  {
    std::lock_guard lk(mu_);
    if (stop_) fail("the executor is shutting down");
    id = next_id_++;
    g->id = id;
    g->arrival = id;
    // Unseeded requests: a seed from the executor's seed and the id (splitmix64 of both).
    uint64_t x = cfg_.seed ^ (id * 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    g->seed = r.sampling.seed ? *r.sampling.seed : x ^ (x >> 31);
    incoming_.push_back(std::move(g));
    live_.insert(id);
    if (cb) callbacks_.emplace(id, std::make_shared<ResponseCallback>(std::move(cb)));
    ++stats_.queued_requests;
  }
  work_cv_.notify_one();
  return id;
}

bool Executor::Impl::cancel(RequestId id) {
  {
    std::lock_guard lk(mu_);
    if (!live_.count(id)) return false;
    cancels_.push_back(id);
  }
  work_cv_.notify_one();
  return true;
}

void Executor::Impl::release(RequestId id) {
  {
    std::lock_guard lk(mu_);
    drop_ready_locked(id);
    callbacks_.erase(id);
    if (!live_.count(id)) return;
    released_.insert(id);
    cancels_.push_back(id);
  }
  work_cv_.notify_one();
}

size_t Executor::Impl::drop_ready_locked(RequestId id) {
  auto it = ready_.find(id);
  if (it == ready_.end()) return 0;
  const size_t n = it->second.size();
  ready_.erase(it);
  stats_.kept_responses -= int64_t(n);
  return n;
}

std::vector<Response> Executor::Impl::await(const RequestId* id, std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lk(mu_);
  // An id that is not live (never issued, or its final response already taken) has nothing more to wait for.
  auto ready = [&] {
    if (stop_) return true;
    if (!id) return stats_.kept_responses > 0;
    return !live_.count(*id) || ready_.count(*id) > 0;
  };
  if (!ready()) {
    std::condition_variable own;
    std::condition_variable& cv = id ? own : any_cv_;
    auto reg = id ? id_waiters_.emplace(*id, &own) : id_waiters_.end();
    if (!id) ++any_waiters_;
    const auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                                  : std::chrono::steady_clock::time_point::max();
    while (!ready()) {
      if (timeout) {
        if (cv.wait_until(lk, deadline) == std::cv_status::timeout) break;
      } else {
        cv.wait(lk);
      }
      ++stats_.await_wakeups;
    }
    if (id) id_waiters_.erase(reg);
    else --any_waiters_;
  }
  std::vector<Response> out;
  if (!id) {
    std::vector<Ready> all;
    for (auto& [rid, q] : ready_)
      for (auto& x : q) all.push_back(std::move(x));
    ready_.clear();
    stats_.kept_responses = 0;
    std::sort(all.begin(), all.end(), [](const Ready& a, const Ready& b) { return a.seq < b.seq; });
    for (auto& x : all) out.push_back(std::move(x.r));
    return out;
  }
  auto it = ready_.find(*id);
  if (it == ready_.end()) return out;
  for (auto& x : it->second) out.push_back(std::move(x.r));
  drop_ready_locked(*id);
  return out;
}

void Executor::Impl::emit(Response r) {
  std::shared_ptr<ResponseCallback> cb;
  {
    std::lock_guard lk(mu_);
    const RequestId id = r.request_id;
    if (r.is_final) {
      live_.erase(id);
      ++stats_.completed_requests;
    }
    fill_stats_locked();  // whoever sees a final response sees its blocks freed
    if (auto c = callbacks_.find(id); c != callbacks_.end()) {
      cb = c->second;
      if (r.is_final) callbacks_.erase(c);
    } else if (released_.count(id)) {  // nobody will read it
      if (r.is_final) released_.erase(id);
      return;
    } else {
      ready_[id].push_back({next_seq_++, std::move(r)});
      ++stats_.kept_responses;
      auto [b, e] = id_waiters_.equal_range(id);
      for (; b != e; ++b) b->second->notify_one();
      if (any_waiters_) any_cv_.notify_all();
      return;
    }
  }
  (*cb)(std::move(r));
}

Executor::Executor(const std::string& engine_dir, const ExecutorConfig& cfg) {
  auto e = Engine::load(engine_dir, cfg.num_threads);
  Engine& ref = *e;
  impl_ = std::make_unique<Impl>(ref, std::move(e), cfg);
}

Executor::Executor(Engine& engine, const ExecutorConfig& cfg)
    : impl_(std::make_unique<Impl>(engine, nullptr, cfg)) {}

Executor::~Executor() = default;

RequestId Executor::enqueue(const Request& r) { return impl_->enqueue(r, nullptr); }
RequestId Executor::enqueue(const Request& r, ResponseCallback on_response) {
  if (!on_response) fail("Executor::enqueue: the response callback is empty");
  return impl_->enqueue(r, std::move(on_response));
}
void Executor::check(const Request& r) const { impl_->check(r); }
bool Executor::cancel(RequestId id) { return impl_->cancel(id); }
void Executor::release(RequestId id) { impl_->release(id); }

std::vector<Response> Executor::await_responses(std::optional<std::chrono::milliseconds> timeout) {
  return impl_->await(nullptr, timeout);
}

std::vector<Response> Executor::await_responses(RequestId id, std::optional<std::chrono::milliseconds> timeout) {
  return impl_->await(&id, timeout);
}

Stats Executor::stats() const {
  std::lock_guard lk(impl_->mu_);
  return impl_->stats_;
}

int64_t Executor::num_kv_blocks() const { return impl_->limits_.num_kv_blocks; }
const Engine& Executor::engine() const { return impl_->engine_; }

}  // namespace kiln
