#include "runtime/generate.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/kv_cache.h"
#include "runtime/model_runner.h"

namespace kiln {

void check_request_limits(const Engine& e, int64_t P, int64_t N) {
  const auto& l = e.limits();
  if (P == 0) fail("the prompt is empty");
  if (P > l.max_input_len) fail("prompt of {} tokens exceeds the engine's max_input_len {}", P, l.max_input_len);
  if (N < 1) fail("--max-new-tokens {}: must be at least 1", N);
  if (P + N > l.max_seq_len)
    fail("prompt ({}) + max_new_tokens ({}) = {} exceeds the engine's max_seq_len {}", P, N, P + N, l.max_seq_len);
}

GreedyResult generate_greedy(Engine& e, const std::vector<int32_t>& prompt, const GreedyOptions& o) {
  const int64_t P = int64_t(prompt.size()), V = e.model().vocab_size;
  check_request_limits(e, P, o.max_new_tokens);
  for (auto id : prompt)
    if (id < 0 || id >= V) fail("input id {} is outside the vocabulary (size {})", id, V);
  const int64_t tpb = 32, total = P + o.max_new_tokens;
  const int64_t nblocks = (total + tpb - 1) / tpb;
  ModelRunner runner(e, allocate_kv_cache(e.backend(), e.model(), nblocks, tpb));
  std::vector<int32_t> table(static_cast<size_t>(nblocks));
  for (int64_t i = 0; i < nblocks; ++i) table[i] = int32_t(i);
  // One sequence's step: `tokens` after `cached` tokens already in the cache.
  auto seq_step = [&](std::vector<int32_t> tokens, int64_t cached) {
    SeqStep s;
    s.tokens = std::move(tokens);
    s.num_cached = int32_t(cached);
    s.block_table = &table;
    return s;
  };
  // Prompt chunk [b, b + n); logits only where the prompt ends (or for every row with all_logits).
  auto prompt_chunk = [&](int64_t b, int64_t n, bool all_logits) {
    SeqStep s = seq_step(std::vector<int32_t>(prompt.begin() + b, prompt.begin() + b + n), b);
    s.want_logits = b + n == int64_t(prompt.size());
    s.all_logits = all_logits;
    return s;
  };

  GreedyResult r;
  const int64_t chunk = e.limits().max_num_tokens;  // prefill in chunks of at most max_num_tokens
  if (!o.keep_logits) {
    // Greedy on the device, pipelined: step j + 1 takes its token straight from step j's device-side choice and
    // is queued before the host waits for that choice (an asynchronous 4-byte copy), so the host's work for a
    // step overlaps the device's work on the previous one. A stop token discards the one step queued after it.
    Backend& be = e.backend();
    Tensor sampled;
    for (int64_t b = 0; b < P; b += chunk) {
      const int64_t n = std::min(chunk, P - b);
      SeqStep s = prompt_chunk(b, n, false);
      if (s.want_logits) {
        sampled = runner.step_greedy({s});
      } else {
        runner.step({s});
      }
    }
    uint64_t ticket = be.download_async(sampled, sizeof(int32_t));
    for (int64_t j = 0, pos = P; j < o.max_new_tokens; ++j, ++pos) {
      uint64_t queued = 0;
      if (j + 1 < o.max_new_tokens) {
        SeqStep s = seq_step({0}, pos);  // token 0 stands for the device-side choice of the previous step
        queued = be.download_async(runner.step_greedy({s}, /*ids_from_sample=*/true), sizeof(int32_t));
      }
      int32_t next = -1;
      be.wait_download(ticket, &next);
      ticket = queued;
      r.output_ids.push_back(next);
      if (o.on_token) o.on_token(next);
      if (std::find(o.stop_ids.begin(), o.stop_ids.end(), next) != o.stop_ids.end()) break;
    }
    if (ticket) {  // the step queued after a stop token
      int32_t unused;
      be.wait_download(ticket, &unused);
    }
    return r;
  }

  // With --logits-out every row comes to the host; the choice is made there.
  std::vector<float> row(static_cast<size_t>(V));
  auto argmax = [&](const float* x) { return int32_t(std::max_element(x, x + V) - x); };
  int32_t next = -1;
  for (int64_t b = 0; b < P; b += chunk) {
    const int64_t n = std::min(chunk, P - b);
    SeqStep s = prompt_chunk(b, n, true);
    Tensor logits = runner.step({s});
    const int64_t rows = logits.dim(0);
    std::vector<float> host(static_cast<size_t>(rows * V));
    e.backend().download(host.data(), logits, host.size() * 4);
    r.context_logits.insert(r.context_logits.end(), host.begin(), host.end());
    if (s.want_logits) {
      std::copy(host.end() - V, host.end(), row.begin());
      next = argmax(row.data());
    }
  }
  int64_t pos = P;
  for (int64_t j = 0; j < o.max_new_tokens; ++j) {
    r.generation_logits.insert(r.generation_logits.end(), row.begin(), row.end());
    r.output_ids.push_back(next);
    if (o.on_token) o.on_token(next);
    if (std::find(o.stop_ids.begin(), o.stop_ids.end(), next) != o.stop_ids.end()) break;
    if (j + 1 == o.max_new_tokens) break;
    Tensor logits = runner.step({seq_step({next}, pos)});
    e.backend().download(row.data(), logits, size_t(V) * 4);
    next = argmax(row.data());
    ++pos;
  }
  return r;
}

}  // namespace kiln
