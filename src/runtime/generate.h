// Greedy generation of one sequence: one request through an Executor of its own (the same decode loop as
// every request), with its logits rows when asked.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "runtime/engine.h"

namespace kiln {

struct GreedyResult {
  std::vector<int32_t> output_ids;        // generated ids only
  std::vector<float> context_logits;      // [P, V] when asked
  std::vector<float> generation_logits;   // [N, V] when asked; row j is what token j was chosen from
};

struct GreedyOptions {
  int64_t max_new_tokens = 16;
  bool keep_logits = false;
  std::vector<int64_t> stop_ids;                   // stop after emitting one of these (empty: never)
  std::function<void(int32_t)> on_token;           // called for each generated id as it is produced
};

// Checks the prompt against the engine's limits; errors name the limit.
void check_request_limits(const Engine& e, int64_t prompt_len, int64_t max_new_tokens);
GreedyResult generate_greedy(Engine& e, const std::vector<int32_t>& prompt, const GreedyOptions& o);

}  // namespace kiln
