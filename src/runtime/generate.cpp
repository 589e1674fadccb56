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

  GreedyResult r;
  std::vector<float> row(static_cast<size_t>(V));
  auto argmax = [&](const float* x) { return int32_t(std::max_element(x, x + V) - x); };
  // Without --logits-out the choice is made on the device: only the chosen id crosses to the host.
  Backend& be = e.backend();
  Tensor chosen = be.alloc(DType::I32, {1});
  auto device_argmax = [&](const Tensor& logits) {
    be.argmax({logits.rows(logits.dim(0) - 1, 1), chosen});
    int32_t id = -1;
    be.download(&id, chosen, sizeof(id));
    return id;
  };
  // Prefill in chunks of at most max_num_tokens.
  const int64_t chunk = e.limits().max_num_tokens;
  int32_t next = -1;
  for (int64_t b = 0; b < P; b += chunk) {
    const int64_t n = std::min(chunk, P - b);
    SeqStep s;
    s.tokens.assign(prompt.begin() + b, prompt.begin() + b + n);
    s.num_cached = int32_t(b);
    s.block_table = &table;
    s.want_logits = b + n == P;
    s.all_logits = o.keep_logits;
    Tensor logits = runner.step({s});
    if (!s.want_logits && !s.all_logits) continue;
    if (!o.keep_logits) {
      next = device_argmax(logits);
      continue;
    }
    const int64_t rows = logits.dim(0);
    std::vector<float> host(static_cast<size_t>(rows * V));
    e.backend().download(host.data(), logits, host.size() * 4);
    if (o.keep_logits) r.context_logits.insert(r.context_logits.end(), host.begin(), host.end());
    if (s.want_logits) {
      std::copy(host.end() - V, host.end(), row.begin());
      next = argmax(row.data());
    }
  }
  int64_t pos = P;
  for (int64_t j = 0; j < o.max_new_tokens; ++j) {
    if (o.keep_logits) r.generation_logits.insert(r.generation_logits.end(), row.begin(), row.end());
    r.output_ids.push_back(next);
    if (o.on_token) o.on_token(next);
    if (std::find(o.stop_ids.begin(), o.stop_ids.end(), next) != o.stop_ids.end()) break;
    if (j + 1 == o.max_new_tokens) break;
    SeqStep s;
    s.tokens = {next};
    s.num_cached = int32_t(pos);
    s.block_table = &table;
    Tensor logits = runner.step({s});
    if (o.keep_logits) {
      be.download(row.data(), logits, size_t(V) * 4);
      next = argmax(row.data());
    } else {
      next = device_argmax(logits);
    }
    ++pos;
  }
  return r;
}

}  // namespace kiln
