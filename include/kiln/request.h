// kiln::Request and kiln::Response: what goes into an Executor and what comes back.
//
// A request is token ids in, token ids out. Decoding is greedy unless sampling.temperature > 0; beam search when
// beam_width > 1. Every field is checked at Executor::enqueue, which throws kiln::Error naming the field or the
// engine limit that was exceeded.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln {

using RequestId = uint64_t;

// Why a sequence stopped. None while it is still running.
enum class FinishReason { None, Length, Stop, Eos, Cancelled, Error };
// "length", "stop", "eos", "cancelled", "error"; "" for None.
const char* finish_reason_name(FinishReason r);

// Beam search stopping, as transformers' `early_stopping`: Heuristic (False) stops when no running beam can
// beat the worst finished one at its current length; Eager (True) stops as soon as num_beams hypotheses are
// finished; Never ("never") stops only when no running beam could improve even at the longest length.
enum class EarlyStopping { Heuristic, Eager, Never };

struct SamplingParams {
  // 0: greedy (argmax; top_k, top_p and min_p are ignored). > 0: sample from softmax(logits / temperature)
  // after top_k, top_p and min_p, in that order.
  float temperature = 0.0f;
  int32_t top_k = 0;    // keep the k most likely tokens (0: no limit)
  float top_p = 1.0f;   // keep the most likely tokens while the probability before each is below top_p
  float min_p = 0.0f;   // drop tokens less likely than min_p times the most likely one
  // Penalties, applied to the logits before anything else (greedy and beam search too):
  float repetition_penalty = 1.0f;  // tokens of prompt and output: logit > 0 ? logit / p : logit * p
  float presence_penalty = 0.0f;    // logit -= presence_penalty once a token occurs in the output
  float frequency_penalty = 0.0f;   // logit -= frequency_penalty * (times the token occurs in the output)
  // Same seed, same output, whatever else the executor is running. Unset: derived from the executor's seed and
  // the request id.
  std::optional<uint64_t> seed;
  bool ignore_eos = false;  // do not stop at end_id (the token may still be generated)
  // Beam search: score = (sum of the tokens' log-probs) / (generated length ^ length_penalty).
  float length_penalty = 1.0f;
  EarlyStopping early_stopping = EarlyStopping::Heuristic;
};

struct Request {
  std::vector<int32_t> input_ids;  // the prompt, at most the engine's max_input_len
  int32_t max_new_tokens = 16;     // prompt + max_new_tokens must fit the engine's max_seq_len
  std::optional<int32_t> end_id;   // unset: the model's EOS ids; negative: none
  // Pads the returned sequences of the final response to equal length (several returned sequences only).
  std::optional<int32_t> pad_id;
  SamplingParams sampling;
  std::vector<std::vector<int32_t>> stop_sequences;  // stop once the output ends with one (kept in the output)
  std::vector<std::vector<int32_t>> bad_words;       // never generate a token that would complete one
  int32_t beam_width = 1;            // > 1: beam search, up to the engine's max_beam_width
  int32_t num_return_sequences = 1;  // beams returned (<= beam_width), or independent samples (temperature > 0)
  bool return_log_probs = false;     // log-probability of each generated token (see docs/executor.md)
  bool streaming = false;            // a response per step with the new tokens (not with beam search)
  // Float32 logits rows in the final response (one sequence only, no beam search; every row comes to the host,
  // so the request runs off the device-side greedy path): every prompt position's, and the row each generated
  // token was chosen from (generation row j is the distribution of generated token j, before penalties).
  bool return_context_logits = false;
  bool return_generation_logits = false;
};

struct Response {
  RequestId request_id = 0;
  bool is_final = false;  // the last response of this request
  std::string error;      // non-empty: the request failed after it was accepted (is_final is then true)
  // The request's first response after its admission: seconds from enqueue to its first admission (the time it
  // waited for a place in the batch and KV blocks); -1 in every other response.
  double queue_time_s = -1;
  // One entry per returned sequence. Streaming: the tokens generated since the previous response; otherwise
  // (one final response) every generated token. Beam search: best first. End ids and stop sequences that
  // ended a sequence are included.
  std::vector<std::vector<int32_t>> output_ids;
  std::vector<std::vector<float>> log_probs;  // parallel to output_ids when return_log_probs (never padded)
  std::vector<float> scores;                  // beam search, final response: each returned beam's score
  std::vector<FinishReason> finish_reasons;   // per returned sequence
  std::vector<float> context_logits;          // final response, return_context_logits: [prompt_len, vocab]
  std::vector<float> generation_logits;       // final response, return_generation_logits: [generated, vocab]
};

}  // namespace kiln
