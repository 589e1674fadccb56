// kiln run through the executor: the runtime and sampling flags (shared with kiln bench), JSONL requests and
// results, the batch runner (--input-file) and the single-prompt runner.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "kiln/executor.h"
#include "runtime/outcome.h"

namespace kiln {
class Tokenizer;
}

namespace kiln::cli {

// --kv-cache-bytes, --kv-cache-fraction, --tokens-per-block, --scheduler-policy, --max-num-tokens,
// --enable-prefix-reuse.
struct RuntimeFlags {
  std::optional<int64_t> kv_cache_bytes;
  std::optional<double> kv_cache_fraction;
  int32_t tokens_per_block = 32;
  std::string scheduler_policy = "guaranteed_no_evict";
  int64_t max_num_tokens = 0;
  bool enable_prefix_reuse = false;
};
void add_runtime_options(CLI::App* cmd, RuntimeFlags& f);
// Refuses a bad runtime flag or --threads (0, negative, huge), naming it: called before the engine loads.
void check_runtime_flags(const RuntimeFlags& f, int threads);
ExecutorConfig executor_config(const RuntimeFlags& f, int threads);  // checks the flags too

// Request fields from the command line. They apply to the single prompt, and are the defaults of every
// --input-file request (a line's own fields win).
struct SamplingFlags {
  std::optional<float> temperature, top_p, min_p, repetition_penalty, presence_penalty, frequency_penalty,
      length_penalty;
  std::optional<int32_t> top_k, beam_width, num_return_sequences, end_id, pad_id;
  std::optional<uint64_t> seed;
  std::string early_stopping;  // "", "true", "false" or "never"
  bool return_log_probs = false;
  bool any() const;  // a flag that changes decoding from plain greedy was given
  void apply(Request& r) const;
};
void add_sampling_options(CLI::App* cmd, SamplingFlags& f);

// End ids as a request takes them: none (end_id -1) when `ids` is empty; else the first as end_id and the
// others as one-token stop sequences.
void set_end_ids(Request& r, const std::vector<int32_t>& ids);

// One JSONL request: `input_ids` or `prompt` (needs a tokenizer), and any Request field by its API name.
// Starts from `base` (command-line defaults). Throws kiln::Error naming the field.
Request request_from_json(const nlohmann::json& j, const Request& base, const Tokenizer* tok);

// The result line: output_ids, finish_reason, scores (beams), log_probs (when asked), text (with a tokenizer);
// lists of these when several sequences were asked for.
nlohmann::json result_to_json(const Outcome& o, const Request& r, const Tokenizer* tok);

// kiln run --input-file IN [--output-file OUT]: every request through one executor at once; one result line per
// request in input order (stdout without OUT). A bad line gets {"error": ...} and the others still run. A line
// that sets neither end_id nor ignore_eos (nor does `base`) stops at the tokenizer's stop ids, as a single prompt
// does. Returns the number of requests that failed.
int64_t run_jsonl(Engine& engine, const Tokenizer* tok, const std::string& input_file, const std::string& output_file,
                  const ExecutorConfig& cfg, const Request& base);

// kiln run with one prompt through the executor: streams text (with a tokenizer) or prints ids, one line per
// returned sequence. Returns the result object (as a JSONL result line).
nlohmann::json run_prompt(Engine& engine, const Tokenizer* tok, Request r, const ExecutorConfig& cfg);

// What kiln run passes on to the executor paths.
struct ExecutorRunArgs {
  int64_t max_new_tokens = 16;
  bool ignore_eos = false;
  int threads = 0;
  RuntimeFlags runtime;
  SamplingFlags sampling;
  std::string output_file;
};
// kiln run --input-file: the engine's tokenizer is used when the engine folder has one.
void run_input_file(const std::string& engine_dir, const std::string& input_file, const ExecutorRunArgs& a);
// kiln run --input-ids/--prompt without --logits-out. With a tokenizer the request stops at its stop ids
// (unless --ignore-eos); with ids alone it runs max_new_tokens unless --end-id is given. Without KV flags the
// pool is sized for this one request.
void run_single_prompt(Engine& engine, const Tokenizer* tok, const std::vector<int32_t>& prompt,
                       const ExecutorRunArgs& a);

}  // namespace kiln::cli
