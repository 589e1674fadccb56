// Outcome: everything one request produced, gathered from its responses (streamed deltas are concatenated).
// Shared by the CLI's batch runner and the executor tests.
#pragma once
#include <string>
#include <vector>

#include "kiln/request.h"

namespace kiln {

struct Outcome {
  std::vector<std::vector<int32_t>> ids;        // per returned sequence
  std::vector<std::vector<float>> log_probs;    // per returned sequence, when asked
  std::vector<float> scores;                    // beams
  std::vector<FinishReason> reasons;
  std::string error;
  int responses = 0;  // responses absorbed
  int finals = 0;     // final responses absorbed (exactly one when all is well)
  bool done() const { return finals > 0; }
};

inline void absorb(Outcome& o, const Response& r) {
  ++o.responses;
  if (o.ids.size() < r.output_ids.size()) o.ids.resize(r.output_ids.size());
  for (size_t i = 0; i < r.output_ids.size(); ++i)
    o.ids[i].insert(o.ids[i].end(), r.output_ids[i].begin(), r.output_ids[i].end());
  if (o.log_probs.size() < r.log_probs.size()) o.log_probs.resize(r.log_probs.size());
  for (size_t i = 0; i < r.log_probs.size(); ++i)
    o.log_probs[i].insert(o.log_probs[i].end(), r.log_probs[i].begin(), r.log_probs[i].end());
  if (r.is_final) {
    ++o.finals;
    o.scores = r.scores;
    o.reasons = r.finish_reasons;
    o.error = r.error;
  }
}

}  // namespace kiln
