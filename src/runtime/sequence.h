// Sequence and SequenceGroup: the executor's state of one request.
//
// A request is a group of sequences. It starts as one sequence (the prompt); with beam search, or with several
// sampled sequences, it forks after the prompt's logits into beam_width (or num_return_sequences) sequences that
// share the prompt's KV blocks. A sequence's KV cache holds tokens[0, num_computed); the tokens after that are
// processed by the next steps. Preemption drops every block and sets num_computed to 0: the KV is recomputed
// from the tokens when the group resumes, and sampling state (seeded by position) is unchanged.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "kiln/request.h"
#include "runtime/beam_search.h"

namespace kiln {

struct Sequence {
  std::vector<int32_t> tokens;       // prompt + generated
  int32_t num_computed = 0;          // tokens whose K/V are in the cache
  std::vector<int32_t> blocks;       // block table: block i holds positions [i * tpb, (i + 1) * tpb)
  std::vector<uint64_t> hashes;      // prefix-cache hash of each full block published so far (prefix reuse)
  std::vector<float> log_probs;      // one per generated token
  int32_t stream = 0;                // index within the request (seeds its draws)
  FinishReason finish = FinishReason::None;
  size_t sent = 0;                   // generated tokens already streamed

  int32_t len() const { return int32_t(tokens.size()); }
  bool finished() const { return finish != FinishReason::None; }
};

struct SequenceGroup {
  RequestId id = 0;
  uint64_t arrival = 0;  // FCFS order
  Request req;
  int32_t prompt_len = 0;
  std::vector<int32_t> end_ids;  // effective end ids (empty: none, or ignore_eos)
  uint64_t seed = 0;
  int32_t num_seqs_max = 1;      // sequences once forked: beam_width, or num_return_sequences when sampling
  int64_t worst_case_blocks = 0;  // KV blocks the group can hold at most (guaranteed_no_evict reserves this)
  bool forked = false;
  bool admitted = false;          // in the scheduler's running list (holding KV blocks)
  // Queue time: from enqueue to the first admission, reported in the request's first response.
  std::chrono::steady_clock::time_point enqueued, first_admitted;
  bool ever_admitted = false, queue_time_sent = false;
  std::vector<Sequence> seqs;    // running sequences (finished sampled sequences stay, marked finished)
  std::unique_ptr<BeamSearch> beam;
  int64_t preemptions = 0;
  std::vector<float> context_logits;     // return_context_logits: [rows so far, V]
  std::vector<float> generation_logits;  // return_generation_logits: [rows so far, V]

  int32_t generated() const { return seqs.empty() ? 0 : seqs[0].len() - prompt_len; }
  bool is_beam() const { return req.beam_width > 1; }
};

}  // namespace kiln
