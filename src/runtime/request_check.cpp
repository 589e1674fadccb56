#include "runtime/request_check.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace kiln {

namespace {

void check_ids(const std::vector<int32_t>& ids, int64_t V, const std::string& field) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= V) fail("{}[{}] = {} is outside the vocabulary (size {})", field, i, ids[i], V);
}

void check_sequences(const std::vector<std::vector<int32_t>>& seqs, int64_t V, const char* field) {
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (seqs[i].empty()) fail("{}[{}] is empty", field, i);
    check_ids(seqs[i], V, fmt::format("{}[{}]", field, i));
  }
}

}  // namespace

int32_t request_num_seqs(const Request& r) { return r.beam_width > 1 ? r.beam_width : r.num_return_sequences; }

void check_request(const Request& r, const RequestLimits& l, int64_t worst_case_blocks) {
  const int64_t P = int64_t(r.input_ids.size()), N = r.max_new_tokens;
  if (P == 0) fail("input_ids: the prompt is empty");
  check_ids(r.input_ids, l.vocab_size, "input_ids");
  if (P > l.max_input_len) fail("prompt of {} tokens exceeds the engine's max_input_len {}", P, l.max_input_len);
  if (N < 1) fail("max_new_tokens {}: must be at least 1", N);
  if (P + N > l.max_seq_len)
    fail("prompt ({}) + max_new_tokens ({}) = {} exceeds the engine's max_seq_len {}", P, N, P + N, l.max_seq_len);
  if (r.beam_width < 1) fail("beam_width {}: must be at least 1", r.beam_width);
  if (r.beam_width > l.max_beam_width)
    fail("beam_width {} exceeds the engine's max_beam_width {} (build the engine with --max-beam-width)", r.beam_width,
         l.max_beam_width);
  if ((r.return_context_logits || r.return_generation_logits) && request_num_seqs(r) > 1)
    fail("return_context_logits / return_generation_logits: only for one sequence (not with beam_width {} or "
         "num_return_sequences {})", r.beam_width, r.num_return_sequences);
  if (r.num_return_sequences < 1) fail("num_return_sequences {}: must be at least 1", r.num_return_sequences);

  const SamplingParams& s = r.sampling;
  if (!std::isfinite(s.temperature) || s.temperature < 0)
    fail("temperature {}: must be 0 (greedy) or positive", s.temperature);
  if (s.top_k < 0) fail("top_k {}: must be 0 (no limit) or positive", s.top_k);
  if (!(s.top_p > 0 && s.top_p <= 1)) fail("top_p {}: must be in (0, 1]", s.top_p);
  if (!(s.min_p >= 0 && s.min_p <= 1)) fail("min_p {}: must be in [0, 1]", s.min_p);
  if (!std::isfinite(s.repetition_penalty) || s.repetition_penalty <= 0)
    fail("repetition_penalty {}: must be positive (1: none)", s.repetition_penalty);
  if (!std::isfinite(s.presence_penalty)) fail("presence_penalty {}: must be finite", s.presence_penalty);
  if (!std::isfinite(s.frequency_penalty)) fail("frequency_penalty {}: must be finite", s.frequency_penalty);
  if (!std::isfinite(s.length_penalty)) fail("length_penalty {}: must be finite", s.length_penalty);

  if (r.beam_width > 1) {
    if (r.num_return_sequences > r.beam_width)
      fail("num_return_sequences {} exceeds beam_width {}", r.num_return_sequences, r.beam_width);
    if (s.temperature > 0)
      fail("beam search (beam_width {}) does not sample: temperature must be 0, not {}", r.beam_width, s.temperature);
    if (r.streaming) fail("streaming is not supported with beam search (beam_width {})", r.beam_width);
  } else if (r.num_return_sequences > 1 && !(s.temperature > 0)) {
    fail("num_return_sequences {} without beam search needs sampling (temperature > 0): greedy outputs would be "
         "identical", r.num_return_sequences);
  }
  const int32_t seqs = request_num_seqs(r);
  if (seqs > l.max_seqs_per_step)
    fail("{} {} exceeds the {} sequences a step can hold (max_batch_size / max_num_tokens)",
         r.beam_width > 1 ? "beam_width" : "num_return_sequences", seqs, l.max_seqs_per_step);

  if (r.end_id && *r.end_id >= l.vocab_size)
    fail("end_id {} is outside the vocabulary (size {})", *r.end_id, l.vocab_size);
  if (r.pad_id && (*r.pad_id < 0 || *r.pad_id >= l.vocab_size))
    fail("pad_id {} is outside the vocabulary (size {})", *r.pad_id, l.vocab_size);
  check_sequences(r.stop_sequences, l.vocab_size, "stop_sequences");
  check_sequences(r.bad_words, l.vocab_size, "bad_words");

  if (worst_case_blocks > l.num_kv_blocks)
    fail("the request needs up to {} KV blocks ({} sequence(s) of {} tokens, {} tokens per block) but the KV cache "
         "holds {}: raise --kv-cache-bytes / --kv-cache-fraction or lower max_new_tokens",
         worst_case_blocks, seqs, P + N, l.tokens_per_block, l.num_kv_blocks);
}

std::vector<int32_t> effective_end_ids(const Request& r, const std::vector<int64_t>& model_eos) {
  if (r.sampling.ignore_eos) return {};
  if (r.end_id) return *r.end_id >= 0 ? std::vector<int32_t>{*r.end_id} : std::vector<int32_t>{};
  std::vector<int32_t> ids;
  for (int64_t e : model_eos)
    if (e >= 0) ids.push_back(int32_t(e));
  return ids;
}

}  // namespace kiln
