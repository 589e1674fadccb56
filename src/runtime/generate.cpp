#include "runtime/generate.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/kv_cache.h"
#include "kiln/executor.h"

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
  // One request through an Executor with a KV pool just large enough for it.
  ExecutorConfig cfg;
  const int64_t tpb = cfg.tokens_per_block;
  cfg.kv_cache_bytes = int64_t(kv_block_bytes(e.model(), e.backend().compute_dtype(), tpb)) *
                       ((P + o.max_new_tokens + tpb - 1) / tpb);
  cfg.warm_up = false;
  Executor ex(e, cfg);
  Request r;
  r.input_ids = prompt;
  r.max_new_tokens = int32_t(o.max_new_tokens);
  r.end_id = -1;  // stop only at o.stop_ids
  for (int64_t id : o.stop_ids) r.stop_sequences.push_back({int32_t(id)});
  r.streaming = bool(o.on_token);
  r.return_context_logits = r.return_generation_logits = o.keep_logits;
  const RequestId id = ex.enqueue(r);
  GreedyResult res;
  for (bool done = false; !done;)
    for (Response& resp : ex.await_responses(id)) {
      if (!resp.error.empty()) fail("{}", resp.error);
      for (int32_t t : resp.output_ids.at(0)) {
        res.output_ids.push_back(t);
        if (o.on_token) o.on_token(t);
      }
      if ((done = resp.is_final)) {
        res.context_logits = std::move(resp.context_logits);
        res.generation_logits = std::move(resp.generation_logits);
      }
    }
  return res;
}

}  // namespace kiln
