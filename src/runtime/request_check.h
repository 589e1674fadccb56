// Checks a Request against the engine's limits and the executor's KV pool before it is queued.
#pragma once
#include <cstdint>
#include <vector>

#include "kiln/request.h"

namespace kiln {

struct RequestLimits {
  int64_t vocab_size = 0;
  int64_t max_input_len = 0;
  int64_t max_seq_len = 0;
  int64_t max_beam_width = 1;
  int64_t max_seqs_per_step = 0;  // min(max_batch_size, max_num_tokens): a request's sequences run together
  int64_t num_kv_blocks = 0;
  int64_t tokens_per_block = 0;
};

// Sequences a request runs once forked: beam_width, or num_return_sequences of independent samples.
int32_t request_num_seqs(const Request& r);
// Throws kiln::Error naming the field and the limit. `worst_case_blocks`: KV blocks the request may hold.
void check_request(const Request& r, const RequestLimits& l, int64_t worst_case_blocks);
// The ids a request stops at: end_id if set (none if negative), else the model's EOS ids; none with ignore_eos.
std::vector<int32_t> effective_end_ids(const Request& r, const std::vector<int64_t>& model_eos);

}  // namespace kiln
