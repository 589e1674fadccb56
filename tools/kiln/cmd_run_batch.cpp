#include "cmd_run_batch.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <type_traits>

#include "core/error.h"
#include "core/fs_util.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "io/json_file.h"
#include "io/json_value.h"
#include "kiln/tokenizer.h"
#include "runtime/engine.h"
#include "runtime/kv_cache.h"
#include "runtime/request_check.h"

namespace kiln::cli {

void add_runtime_options(CLI::App* cmd, RuntimeFlags& f) {
  cmd->add_option("--kv-cache-bytes", f.kv_cache_bytes, "KV cache size in bytes (a hard cap)");
  cmd->add_option("--kv-cache-fraction", f.kv_cache_fraction, "KV cache as a fraction of free memory (default 0.9)");
  cmd->add_option("--tokens-per-block", f.tokens_per_block, "tokens per KV block (default 32)");
  cmd->add_option("--scheduler-policy", f.scheduler_policy, "guaranteed_no_evict (default) | max_utilization")
      ->check(CLI::IsMember({"guaranteed_no_evict", "max_utilization"}));
  cmd->add_option("--max-num-tokens", f.max_num_tokens, "tokens per step (default and at most: the engine's)");
  cmd->add_flag("--enable-prefix-reuse", f.enable_prefix_reuse, "reuse KV blocks of identical prompt prefixes");
}

void check_runtime_flags(const RuntimeFlags& f, int threads) {
  if (threads < 0 || threads > kMaxThreads) fail("--threads {}: must be in [0, {}] (0: all cores)", threads, kMaxThreads);
  if (f.kv_cache_bytes && f.kv_cache_fraction) fail("give --kv-cache-bytes or --kv-cache-fraction, not both");
  if (f.kv_cache_bytes && *f.kv_cache_bytes < 1) fail("--kv-cache-bytes {}: must be positive", *f.kv_cache_bytes);
  if (f.kv_cache_fraction && !(*f.kv_cache_fraction > 0 && *f.kv_cache_fraction <= 1))
    fail("--kv-cache-fraction {}: must be in (0, 1]", *f.kv_cache_fraction);
  if (f.tokens_per_block < 1 || f.tokens_per_block > kMaxTokensPerBlock)
    fail("--tokens-per-block {}: must be in [1, {}]", f.tokens_per_block, kMaxTokensPerBlock);
  if (f.max_num_tokens < 0) fail("--max-num-tokens {}: must be positive (0: the engine's)", f.max_num_tokens);
}

ExecutorConfig executor_config(const RuntimeFlags& f, int threads) {
  check_runtime_flags(f, threads);
  ExecutorConfig c;
  c.policy = scheduler_policy_from_name(f.scheduler_policy);
  c.kv_cache_bytes = f.kv_cache_bytes;
  if (f.kv_cache_fraction) c.kv_cache_fraction = *f.kv_cache_fraction;
  c.tokens_per_block = f.tokens_per_block;
  c.max_num_tokens = f.max_num_tokens;
  c.enable_prefix_reuse = f.enable_prefix_reuse;
  c.num_threads = threads;
  return c;
}

bool SamplingFlags::any() const {
  return temperature || top_p || min_p || repetition_penalty || presence_penalty || frequency_penalty ||
         length_penalty || top_k || beam_width || num_return_sequences || end_id || pad_id || seed ||
         !early_stopping.empty() || return_log_probs;
}

namespace {

EarlyStopping early_stopping_from(const std::string& s, const char* where) {
  if (s == "false") return EarlyStopping::Heuristic;
  if (s == "true") return EarlyStopping::Eager;
  if (s == "never") return EarlyStopping::Never;
  fail("{} '{}': expected true, false or never", where, s);
}

}  // namespace

void SamplingFlags::apply(Request& r) const {
  SamplingParams& s = r.sampling;
  if (temperature) s.temperature = *temperature;
  if (top_k) s.top_k = *top_k;
  if (top_p) s.top_p = *top_p;
  if (min_p) s.min_p = *min_p;
  if (repetition_penalty) s.repetition_penalty = *repetition_penalty;
  if (presence_penalty) s.presence_penalty = *presence_penalty;
  if (frequency_penalty) s.frequency_penalty = *frequency_penalty;
  if (length_penalty) s.length_penalty = *length_penalty;
  if (seed) s.seed = *seed;
  if (!early_stopping.empty()) s.early_stopping = early_stopping_from(early_stopping, "--early-stopping");
  if (beam_width) r.beam_width = *beam_width;
  if (num_return_sequences) r.num_return_sequences = *num_return_sequences;
  if (end_id) r.end_id = *end_id;
  if (pad_id) r.pad_id = *pad_id;
  if (return_log_probs) r.return_log_probs = true;
}

void add_sampling_options(CLI::App* cmd, SamplingFlags& f) {
  cmd->add_option("--temperature", f.temperature, "0: greedy (default); > 0: sample");
  cmd->add_option("--top-k", f.top_k, "sample from the k most likely tokens (0: all)");
  cmd->add_option("--top-p", f.top_p, "nucleus sampling threshold in (0, 1]");
  cmd->add_option("--min-p", f.min_p, "drop tokens below min-p x the most likely one's probability");
  cmd->add_option("--repetition-penalty", f.repetition_penalty, "penalty on prompt and output tokens (1: none)");
  cmd->add_option("--presence-penalty", f.presence_penalty, "subtracted once a token is in the output");
  cmd->add_option("--frequency-penalty", f.frequency_penalty, "subtracted per occurrence in the output");
  // An unsigned option would take "-1" as 2^64 - 1.
  const CLI::Validator non_negative(
      [](std::string& s) { return s.rfind('-', 0) == 0 ? std::string("must not be negative") : std::string(); }, "");
  cmd->add_option("--seed", f.seed, "sampling seed (same seed, same output)")->check(non_negative);
  cmd->add_option("--beam-width", f.beam_width, "beam search with this many beams");
  cmd->add_option("--num-return-sequences", f.num_return_sequences, "beams returned, or independent samples");
  cmd->add_option("--length-penalty", f.length_penalty, "beam score = log-prob sum / length^length-penalty");
  cmd->add_option("--early-stopping", f.early_stopping, "beam search stopping: false (default) | true | never")
      ->check(CLI::IsMember({"true", "false", "never"}));
  cmd->add_option("--end-id", f.end_id, "stop at this id (-1: never; default: the model's end ids)");
  cmd->add_option("--pad-id", f.pad_id, "pad returned sequences to equal length with this id");
  cmd->add_flag("--return-log-probs", f.return_log_probs, "report each generated token's log-probability");
}

void set_end_ids(Request& r, const std::vector<int32_t>& ids) {
  if (ids.empty()) {
    r.end_id = -1;
    return;
  }
  r.end_id = ids[0];
  for (size_t i = 1; i < ids.size(); ++i) r.stop_sequences.push_back({ids[i]});
}

namespace {

std::string brief(const nlohmann::json& v) { return brief_json(v); }
template <typename T>
bool as_integer(const nlohmann::json& v, T* out) {
  return json_as_integer(v, out);
}

// A field's value as T, refusing what nlohmann would convert silently: see as_integer; a number beyond float's range
// for a float field.
template <typename T>
T field(const nlohmann::json& j, const char* name, const char* type) {
  const nlohmann::json& v = j.at(name);
  if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::string>) {
    if (std::is_same_v<T, bool> ? v.is_boolean() : v.is_string()) return v.get<T>();
  } else if constexpr (std::is_integral_v<T>) {
    T x;
    if (as_integer(v, &x)) return x;
    fail("field '{}': expected {} in [{}, {}], got {}", name, type, std::numeric_limits<T>::min(),
         std::numeric_limits<T>::max(), brief(v));
  } else {
    static_assert(std::is_floating_point_v<T>);
    float x;
    if (json_as_float(v, &x)) return T(x);
  }
  fail("field '{}': expected {}, got {}", name, type, brief(v));
}

// A list of token ids (each an integer that fits int32; the vocabulary is checked at enqueue).
std::vector<int32_t> token_ids(const nlohmann::json& v, const char* name) {
  if (!v.is_array()) fail("field '{}': expected a list of token ids, got {}", name, brief(v));
  std::vector<int32_t> ids(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    if (!as_integer(v[i], &ids[i])) fail("field '{}': element {} is not a token id: {}", name, i, brief(v[i]));
  return ids;
}

// A token sequence given as ids or as text (encoded without special tokens).
std::vector<int32_t> token_sequence(const nlohmann::json& v, const char* name, const Tokenizer* tok) {
  if (v.is_string()) {
    if (!tok) fail("field '{}': text needs the engine's tokenizer (give token ids instead)", name);
    auto ids = tok->encode(v.get<std::string>(), false);
    if (ids.empty()) fail("field '{}': '{}' encodes to no tokens", name, v.get<std::string>());
    return ids;
  }
  if (v.is_array() && std::all_of(v.begin(), v.end(), [](const auto& x) { return x.is_number(); }))
    return token_ids(v, name);
  fail("field '{}': expected a string or a list of token ids, got {}", name, brief(v));
}

// One sequence (a string or a list of ids) or a list of them.
std::vector<std::vector<int32_t>> token_sequences(const nlohmann::json& v, const char* name, const Tokenizer* tok) {
  if (v.is_string() || (v.is_array() && !v.empty() && v[0].is_number())) return {token_sequence(v, name, tok)};
  if (!v.is_array()) fail("field '{}': expected a string, a list of ids, or a list of those", name);
  std::vector<std::vector<int32_t>> out;
  for (const auto& x : v) out.push_back(token_sequence(x, name, tok));
  return out;
}

}  // namespace

Request request_from_json(const nlohmann::json& j, const Request& base, const Tokenizer* tok) {
  if (!j.is_object()) fail("expected a JSON object, got {}", brief(j));
  Request r = base;
  const bool has_ids = j.contains("input_ids"), has_prompt = j.contains("prompt");
  if (has_ids == has_prompt) fail("give exactly one of 'input_ids' and 'prompt'");
  if (has_ids) r.input_ids = token_ids(j["input_ids"], "input_ids");
  if (has_prompt) {
    if (!tok) fail("field 'prompt': the engine has no tokenizer (give input_ids instead)");
    r.input_ids = tok->encode(field<std::string>(j, "prompt", "a string"), true);
    if (r.input_ids.empty()) fail("field 'prompt': {} encodes to no tokens", brief(j["prompt"]));
  }
  SamplingParams& s = r.sampling;
  for (auto& [key, v] : j.items()) {
    const char* k = key.c_str();
    if (key == "input_ids" || key == "prompt" || key == "id") continue;
    if (key == "max_new_tokens") r.max_new_tokens = field<int32_t>(j, k, "an integer");
    else if (key == "end_id") r.end_id = field<int32_t>(j, k, "an integer");
    else if (key == "pad_id") r.pad_id = field<int32_t>(j, k, "an integer");
    else if (key == "temperature") s.temperature = field<float>(j, k, "a number");
    else if (key == "top_k") s.top_k = field<int32_t>(j, k, "an integer");
    else if (key == "top_p") s.top_p = field<float>(j, k, "a number");
    else if (key == "min_p") s.min_p = field<float>(j, k, "a number");
    else if (key == "repetition_penalty") s.repetition_penalty = field<float>(j, k, "a number");
    else if (key == "presence_penalty") s.presence_penalty = field<float>(j, k, "a number");
    else if (key == "frequency_penalty") s.frequency_penalty = field<float>(j, k, "a number");
    else if (key == "seed") s.seed = field<uint64_t>(j, k, "a non-negative integer");
    else if (key == "ignore_eos") s.ignore_eos = field<bool>(j, k, "true or false");
    else if (key == "length_penalty") s.length_penalty = field<float>(j, k, "a number");
    else if (key == "early_stopping")
      s.early_stopping = v.is_boolean() ? (v.get<bool>() ? EarlyStopping::Eager : EarlyStopping::Heuristic)
                                        : early_stopping_from(v.is_string() ? v.get<std::string>() : brief(v), k);
    else if (key == "beam_width") r.beam_width = field<int32_t>(j, k, "an integer");
    else if (key == "num_return_sequences") r.num_return_sequences = field<int32_t>(j, k, "an integer");
    else if (key == "return_log_probs") r.return_log_probs = field<bool>(j, k, "true or false");
    else if (key == "streaming") r.streaming = field<bool>(j, k, "true or false");
    else if (key == "stop" || key == "stop_sequences") {
      auto seqs = token_sequences(v, k, tok);
      r.stop_sequences.insert(r.stop_sequences.end(), seqs.begin(), seqs.end());
    } else if (key == "bad_words") r.bad_words = token_sequences(v, k, tok);
    else fail("unknown field '{}'", key);
  }
  return r;
}

nlohmann::json result_to_json(const Outcome& o, const Request& r, const Tokenizer* tok) {
  nlohmann::json j = nlohmann::json::object();
  if (!o.error.empty()) j["error"] = o.error;
  const bool several = r.num_return_sequences > 1;
  auto one_or_list = [&](auto values) { return several ? nlohmann::json(values) : nlohmann::json(values.at(0)); };
  std::vector<std::string> reasons, texts;
  for (auto fr : o.reasons) reasons.push_back(finish_reason_name(fr));
  if (o.ids.empty() || reasons.empty()) return j;
  j["output_ids"] = one_or_list(o.ids);
  j["finish_reason"] = one_or_list(reasons);
  if (!o.scores.empty()) j["scores"] = o.scores;
  if (r.return_log_probs && !o.log_probs.empty()) j["log_probs"] = one_or_list(o.log_probs);
  if (tok) {
    for (size_t k = 0; k < o.ids.size(); ++k) {
      // Padding is not text: decode only the real tokens (as many as log-probs, when padded).
      std::vector<int32_t> ids = o.ids[k];
      if (r.pad_id && k < o.log_probs.size()) ids.resize(o.log_probs[k].size());
      texts.push_back(tok->decode(ids, true));
    }
    j["text"] = one_or_list(texts);
  }
  return j;
}

int64_t run_jsonl(Engine& engine, const Tokenizer* tok, const std::string& input_file, const std::string& output_file,
                  const ExecutorConfig& cfg, const Request& base) {
  if (std::filesystem::is_directory(input_file)) fail("--input-file {}: is a directory", input_file);
  std::ifstream in(input_file);
  if (!in) fail("--input-file {}: cannot open", input_file);
  struct Line {
    nlohmann::json id;
    Request req;
    std::optional<RequestId> rid;
    Outcome out;
  };
  std::vector<Line> lines;
  std::map<RequestId, size_t> by_id;
  Executor ex(engine, cfg);
  std::string text;
  for (int64_t n = 1; std::getline(in, text); ++n) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    Line l;
    try {
      auto j = parse_json(text);
      if (j.is_object() && j.contains("id")) l.id = j["id"];
      l.req = request_from_json(j, base, tok);
      // The tokenizer's stop ids, unless the line (or the command line) chose its own end: `ignore_eos` or
      // `end_id` in a line must drop all of them, as --ignore-eos and --end-id do for a single prompt.
      if (tok && !l.req.end_id && !l.req.sampling.ignore_eos) set_end_ids(l.req, tok->stop_ids());
      l.rid = ex.enqueue(l.req);
      by_id[*l.rid] = lines.size();
    } catch (const std::exception& e) {  // kiln::Error: malformed or too deep JSON, a bad field, a broken limit
      l.out.error = fmt::format("{}:{}: {}", input_file, n, e.what());
      l.out.finals = 1;  // settled here: no response will come
      std::fprintf(stderr, "error: %s\n", l.out.error.c_str());
    }
    lines.push_back(std::move(l));
  }
  if (lines.empty()) fail("--input-file {}: no requests", input_file);
  ProgressBar bar("requests", int64_t(lines.size()));
  size_t done = lines.size() - by_id.size();
  bar.update(int64_t(done));
  while (done < lines.size()) {
    for (const Response& r : ex.await_responses()) {
      Line& l = lines[by_id.at(r.request_id)];
      absorb(l.out, r);
      if (r.is_final) bar.update(int64_t(++done));
    }
  }
  bar.finish();
  std::string all;
  int64_t failed = 0;
  for (auto& l : lines) {
    nlohmann::json j = result_to_json(l.out, l.req, tok);
    if (!l.id.is_null()) j["id"] = l.id;
    failed += j.contains("error");
    all += dump_json(j) + "\n";
  }
  if (output_file.empty()) {
    std::fwrite(all.data(), 1, all.size(), stdout);
  } else {
    write_file_atomic(output_file, all);
  }
  return failed;
}

nlohmann::json run_prompt(Engine& engine, const Tokenizer* tok, Request r, const ExecutorConfig& cfg) {
  Executor ex(engine, cfg);
  const bool stream_text = tok && r.beam_width == 1 && r.num_return_sequences == 1;
  r.streaming = stream_text;
  const RequestId id = ex.enqueue(r);
  Outcome o;
  std::unique_ptr<IncrementalDecoder> dec;
  if (stream_text) dec = std::make_unique<IncrementalDecoder>(*tok, true);
  while (!o.done()) {
    for (const Response& resp : ex.await_responses(id)) {
      absorb(o, resp);
      if (!dec) continue;
      std::string piece;
      for (int32_t t : resp.output_ids.at(0)) piece += dec->push(t);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
  }
  if (!o.error.empty()) fail("{}", o.error);
  nlohmann::json j = result_to_json(o, r, tok);
  if (dec) {
    std::string rest = dec->flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::printf("\n");
    return j;
  }
  for (size_t k = 0; k < o.ids.size(); ++k) {  // one line per returned sequence (best first): text, or ids
    std::string line;
    if (tok) {
      if (o.ids.size() > 1)
        std::printf("--- sequence %zu%s\n", k + 1, o.scores.empty() ? "" : fmt::format(" (score {:.4f})", o.scores[k]).c_str());
      line = j["text"].is_array() ? j["text"][k].get<std::string>() : j["text"].get<std::string>();
    } else {
      for (size_t i = 0; i < o.ids[k].size(); ++i) line += (i ? "," : "") + std::to_string(o.ids[k][i]);
    }
    std::printf("%s\n", line.c_str());
  }
  return j;
}

Request base_request(const ExecutorRunArgs& a) {
  Request r;
  if (a.max_new_tokens < 1 || a.max_new_tokens > INT32_MAX) fail("--max-new-tokens {}: must be positive", a.max_new_tokens);
  r.max_new_tokens = int32_t(a.max_new_tokens);
  r.sampling.ignore_eos = a.ignore_eos;
  a.sampling.apply(r);
  return r;
}

void run_input_file(const std::string& engine_dir, const std::string& input_file, const ExecutorRunArgs& a) {
  namespace fs = std::filesystem;
  auto engine = Engine::load(engine_dir, a.threads);
  std::unique_ptr<Tokenizer> tok;
  if (fs::exists(fs::path(engine_dir) / "tokenizer.json") || fs::exists(fs::path(engine_dir) / "vocab.json"))
    tok = Tokenizer::load(engine_dir);
  const Request base = base_request(a);  // run_jsonl adds the tokenizer's stop ids per line
  const int64_t failed = run_jsonl(*engine, tok.get(), input_file, a.output_file, executor_config(a.runtime, a.threads), base);
  if (failed) fail("{} request(s) of {} failed (their result lines hold the error)", failed, input_file);
}

void run_single_prompt(Engine& engine, const Tokenizer* tok, const std::vector<int32_t>& prompt,
                       const ExecutorRunArgs& a) {
  Request r = base_request(a);
  r.input_ids = prompt;
  if (!a.sampling.end_id) set_end_ids(r, tok && !a.ignore_eos ? tok->stop_ids() : std::vector<int32_t>{});
  ExecutorConfig cfg = executor_config(a.runtime, a.threads);
  // The request against the engine's limits first: the pool below is sized from it (a --max-new-tokens of
  // 10,000,000 or a --beam-width of 1,000 must be refused, not allocated for).
  const EngineLimits& el = engine.limits();
  RequestLimits lim;
  lim.vocab_size = engine.model().vocab_size;
  lim.max_input_len = el.max_input_len;
  lim.max_seq_len = el.max_seq_len;
  lim.max_beam_width = el.max_beam_width;
  lim.max_seqs_per_step = std::min(el.max_batch_size, el.max_num_tokens);
  lim.num_kv_blocks = INT64_MAX;  // not sized yet
  lim.tokens_per_block = cfg.tokens_per_block;
  check_request(r, lim, 0);
  if (!a.runtime.kv_cache_bytes && !a.runtime.kv_cache_fraction) {
    const int64_t tpb = cfg.tokens_per_block, seqs = r.beam_width > 1 ? r.beam_width : r.num_return_sequences;
    const int64_t blocks = std::max<int64_t>(1, seqs * ((int64_t(prompt.size()) + r.max_new_tokens - 1 + tpb - 1) / tpb));
    cfg.kv_cache_bytes = blocks * int64_t(kv_block_bytes(engine.model(), engine.backend().compute_dtype(), tpb));
  }
  nlohmann::json j = run_prompt(engine, tok, r, cfg);
  if (!a.output_file.empty()) write_json_file(a.output_file, j);
}

}  // namespace kiln::cli
