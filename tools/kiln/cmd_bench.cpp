// kiln bench: throughput and latency of the executor on a synthetic workload or a JSONL dataset.
//
// Every request streams, so the time of each token is seen as it is produced (beam searches report only at the
// end: their first token time is their end). Reports output tokens/s, requests/s, TTFT, time per output token
// (per request: (last - first token time) / (tokens - 1)), inter-token latency (every gap between a request's
// consecutive responses) and end-to-end latency as mean/p50/p90/p99, and the KV pool's peak use.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "cmd_run_batch.h"
#include "commands.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/progress.h"
#include "io/json_file.h"
#include "kiln/tokenizer.h"
#include "model/weights.h"
#include "runtime/engine.h"
#include "serve/http_bench.h"

namespace kiln::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string engine_dir, dataset, json_out;
  std::string url, model_name, api_key;  // --url: the same benchmark against a kiln serve (or OpenAI-compatible) server
  int64_t num_requests = 64;
  double input_len = 128, input_len_std = 0, output_len = 128, output_len_std = 0;
  double request_rate = 0;  // requests per second (Poisson arrivals); 0: all at once
  int64_t concurrency = 0;  // requests in flight at most; 0: no limit
  uint64_t seed = 0;
  int threads = 0;
  RuntimeFlags runtime;
  SamplingFlags sampling;
};

struct Summary {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
  size_t n = 0;
};

Summary summarize(std::vector<double> v) {
  Summary s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / double(v.size());
  auto pct = [&](double p) {  // nearest rank
    size_t k = size_t(std::ceil(p / 100.0 * double(v.size())));
    return v[std::min(v.size() - 1, k == 0 ? 0 : k - 1)];
  };
  s.p50 = pct(50);
  s.p90 = pct(90);
  s.p99 = pct(99);
  return s;
}

nlohmann::json to_json(const Summary& s) {
  return {{"mean", s.mean}, {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}, {"count", s.n}};
}

int64_t normal_length(std::mt19937_64& rng, double mean, double stddev, int64_t lo, int64_t hi) {
  double x = mean;
  if (stddev > 0) x = std::normal_distribution<double>(mean, stddev)(rng);
  return std::clamp<int64_t>(int64_t(std::llround(x)), lo, std::max(lo, hi));
}

// A synthetic workload is built whole before the run: its size is bounded before anything is allocated for it.
constexpr int64_t kMaxBenchRequests = 1000000;
constexpr int64_t kMaxBenchPromptTokens = int64_t(1) << 27;  // 512 MiB of prompt ids

// Refuses bad workload flags, naming the flag (before the engine loads).
void check_workload_flags(const BenchOptions& o) {
  auto length = [](double v, const char* flag) {
    if (!std::isfinite(v) || v < 1 || v > INT32_MAX) fail("{} {}: must be in [1, {}]", flag, v, INT32_MAX);
  };
  auto spread = [](double v, const char* flag) {
    if (!std::isfinite(v) || v < 0 || v > INT32_MAX) fail("{} {}: must be in [0, {}]", flag, v, INT32_MAX);
  };
  length(o.output_len, "--output-len");
  spread(o.output_len_std, "--output-len-std");
  if (!std::isfinite(o.request_rate) || o.request_rate < 0)
    fail("--request-rate {}: must be a positive number (0: all at once)", o.request_rate);
  if (o.concurrency < 0) fail("--concurrency {}: must be positive (0: no limit)", o.concurrency);
  if (!o.dataset.empty()) return;
  length(o.input_len, "--input-len");
  spread(o.input_len_std, "--input-len-std");
  if (o.num_requests < 1 || o.num_requests > kMaxBenchRequests)
    fail("--num-requests {}: must be in [1, {}]", o.num_requests, kMaxBenchRequests);
}

std::vector<Request> workload(const BenchOptions& o, const EngineInfo& e, const Tokenizer* tok) {
  Request base;
  base.max_new_tokens = int32_t(o.output_len);
  o.sampling.apply(base);
  std::vector<Request> reqs;
  if (!o.dataset.empty()) {
    std::ifstream in(o.dataset);
    if (!in) fail("--dataset {}: cannot open", o.dataset);
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      try {
        reqs.push_back(request_from_json(parse_json(line), base, tok));
      } catch (const std::exception& ex) {
        fail("{}:{}: {}", o.dataset, n, ex.what());
      }
    }
    if (reqs.empty()) fail("--dataset {}: no requests", o.dataset);
    return reqs;
  }
  const auto& lim = e.limits;
  const double per_prompt = std::min(o.input_len + 3 * o.input_len_std, double(lim.max_input_len));
  if (double(o.num_requests) * per_prompt > double(kMaxBenchPromptTokens))
    fail("--num-requests {} x --input-len {} (+3 x --input-len-std, at most the engine's max_input_len): {:.0f} "
         "prompt tokens is more than the {} a synthetic workload may hold",
         o.num_requests, o.input_len, double(o.num_requests) * per_prompt, kMaxBenchPromptTokens);
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> token(0, int32_t(e.model.vocab_size - 1));
  for (int64_t i = 0; i < o.num_requests; ++i) {
    Request r = base;
    const int64_t P = normal_length(rng, o.input_len, o.input_len_std, 1, std::min(lim.max_input_len, lim.max_seq_len - 1));
    r.max_new_tokens = int32_t(normal_length(rng, o.output_len, o.output_len_std, 1, lim.max_seq_len - P));
    r.input_ids.resize(size_t(P));
    for (auto& t : r.input_ids) t = token(rng);
    if (!o.sampling.end_id) r.end_id = -1;  // synthetic outputs run their full length
    reqs.push_back(std::move(r));
  }
  return reqs;
}

struct Timing {
  Clock::time_point enqueued, first, last;
  bool started = false;
  int64_t tokens = 0;           // over all returned sequences
  std::vector<double> gaps_ms;  // between consecutive responses that carried tokens
  std::string error;
};

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Bytes of weights one decode step reads: every weight matrix once (the embedding table only where it is the tied
// lm_head; one row of it otherwise); and bytes of K and V per cached token. For bandwidth figures.
double weight_bytes_per_step(const EngineInfo& e) {
  const ModelConfig& m = e.model;
  double b = 0;
  for (auto& w : expected_weights(m)) {
    if ((w.name == "embed.weight" && !m.tie_embeddings) || w.name == "pos_embed.weight") continue;
    double n = 1;
    for (auto d : w.shape) n *= double(d);
    b += n * double(dtype_size(e.compute_dtype));
  }
  return b;
}
double kv_bytes_per_token(const EngineInfo& e) {
  const ModelConfig& m = e.model;
  return double(m.num_layers) * 2 * double(m.num_kv_heads * m.head_dim) * double(dtype_size(e.compute_dtype));
}

void print_row(const char* name, const Summary& s) {
  std::printf("  %-22s %10.2f %10.2f %10.2f %10.2f\n", name, s.mean, s.p50, s.p90, s.p99);
}

// Every request through an Executor in this process; returns its statistics.
Stats run_in_process(Engine& engine, const BenchOptions& o, const std::vector<Request>& reqs,
                     const std::vector<double>& arrival, std::vector<Timing>& tm, Clock::time_point* start,
                     Clock::time_point* end_out) {
  Executor ex(engine, executor_config(o.runtime, o.threads));
  const size_t n = reqs.size();
  std::map<RequestId, size_t> index;
  ProgressBar bar("bench", int64_t(n));
  size_t next = 0, done = 0, inflight = 0;
  *start = Clock::now();
  Clock::time_point& end = *end_out;
  end = *start;
  auto room = [&] { return o.concurrency == 0 || int64_t(inflight) < o.concurrency; };
  while (done < n) {
    const double now_s = std::chrono::duration<double>(Clock::now() - *start).count();
    for (; next < n && arrival[next] <= now_s && room(); ++next) {
      tm[next].enqueued = Clock::now();
      try {
        index[ex.enqueue(reqs[next])] = next;
        ++inflight;
      } catch (const Error& e) {
        tm[next].error = e.what();
        bar.update(int64_t(++done));
      }
    }
    auto wait = std::chrono::milliseconds(100);
    if (next < n && room())
      wait = std::min(wait, std::chrono::milliseconds(int64_t(std::max(0.0, (arrival[next] - now_s) * 1000.0)) + 1));
    for (const Response& r : ex.await_responses(wait)) {
      const Clock::time_point t = Clock::now();
      Timing& m = tm[index.at(r.request_id)];
      int64_t got = 0;
      for (auto& ids : r.output_ids) got += int64_t(ids.size());
      if (got > 0) {
        if (m.started) m.gaps_ms.push_back(ms(t - m.last));
        if (!m.started) m.first = t;
        m.started = true;
        m.last = t;
        m.tokens += got;
      }
      if (r.is_final) {
        m.error = r.error;
        m.last = t;
        end = std::max(end, t);
        --inflight;
        bar.update(int64_t(++done));
      }
    }
  }
  bar.finish();

  return ex.stats();
}

// The same requests as streamed /v1/completions to the server at --url (synthetic prompts as token ids).
void run_over_http(const BenchOptions& o, const EngineInfo& info, const std::vector<Request>& reqs,
                   const std::vector<double>& arrival, std::vector<Timing>& tm, Clock::time_point* start,
                   Clock::time_point* end) {
  serve::HttpBenchConfig hc;
  serve::parse_http_url(o.url, &hc.host, &hc.port);
  hc.api_key = o.api_key;
  hc.concurrency = o.concurrency;
  hc.arrival_s = arrival;
  const std::string model = o.model_name.empty()
                                ? std::filesystem::path(o.engine_dir).lexically_normal().filename().string()
                                : o.model_name;
  std::vector<std::string> bodies;
  for (const Request& r : reqs) {
    if (r.beam_width > 1 || r.num_return_sequences > 1 || !r.bad_words.empty() || !r.stop_sequences.empty())
      fail("--url: beam search, several sequences, bad words and stop sequences are not sent over HTTP");
    const SamplingParams& s = r.sampling;
    nlohmann::json b = {{"model", model}, {"prompt", r.input_ids}, {"max_tokens", r.max_new_tokens},
                        {"stream", true}, {"stream_options", {{"include_usage", true}}},
                        {"temperature", s.temperature}, {"top_p", s.top_p}, {"top_k", s.top_k}, {"min_p", s.min_p},
                        {"repetition_penalty", s.repetition_penalty}, {"presence_penalty", s.presence_penalty},
                        {"frequency_penalty", s.frequency_penalty}};
    if (s.seed) b["seed"] = *s.seed;
    if (s.ignore_eos || (r.end_id && *r.end_id < 0)) b["ignore_eos"] = true;
    else if (r.end_id) b["stop_token_ids"] = {*r.end_id};
    bodies.push_back(dump_json(b));
  }
  (void)info;
  ProgressBar bar("bench", int64_t(reqs.size()));
  auto got = serve::run_http_bench(hc, bodies, start, end, [&](size_t done) { bar.update(int64_t(done)); });
  bar.finish();
  for (size_t i = 0; i < reqs.size(); ++i) {
    Timing& m = tm[i];
    m.enqueued = got[i].sent;
    m.first = got[i].first;
    m.last = got[i].last;
    m.started = got[i].started;
    m.tokens = got[i].tokens;
    m.gaps_ms = std::move(got[i].gaps_ms);
    m.error = got[i].error;
  }
}

void bench(const BenchOptions& o) {
  namespace fs = std::filesystem;
  check_workload_flags(o);
  check_runtime_flags(o.runtime, o.threads);
  if (!o.json_out.empty()) check_output_file(o.json_out, "--json-out");
  // Over HTTP (--url) the server holds the engine: only its engine.json is read here, for the workload.
  std::unique_ptr<Engine> engine;
  EngineInfo info;
  if (o.url.empty()) {
    engine = Engine::load(o.engine_dir, o.threads);
    info = engine->info();
  } else {
    const std::string path = (fs::path(o.engine_dir) / "engine.json").string();
    info = engine_info_from_json(read_json_file(path), path);
  }
  std::unique_ptr<Tokenizer> tok;
  if (fs::exists(fs::path(o.engine_dir) / "tokenizer.json") || fs::exists(fs::path(o.engine_dir) / "vocab.json"))
    tok = Tokenizer::load(o.engine_dir);
  std::vector<Request> reqs = workload(o, info, tok.get());
  const size_t n = reqs.size();
  for (auto& r : reqs) r.streaming = r.beam_width == 1;
  // Arrival offsets (seconds from the start): exponential gaps at the request rate (a Poisson process).
  std::vector<double> arrival(n, 0.0);
  if (o.request_rate > 0) {
    std::mt19937_64 rng(o.seed ^ 0x5eedULL);
    std::exponential_distribution<double> gap(o.request_rate);
    double t = 0;
    for (auto& a : arrival) a = (t += gap(rng));
  }

  std::vector<Timing> tm(n);
  Clock::time_point start, end;
  Stats st;
  if (o.url.empty()) {
    st = run_in_process(*engine, o, reqs, arrival, tm, &start, &end);
  } else {
    run_over_http(o, info, reqs, arrival, tm, &start, &end);
  }

  std::vector<double> ttft, tpot, itl, e2e;
  int64_t out_tokens = 0, in_tokens = 0, failed = 0;
  for (size_t i = 0; i < n; ++i) {
    const Timing& m = tm[i];
    if (!m.error.empty()) {
      if (++failed <= 3) std::fprintf(stderr, "error: request %zu: %s\n", i, m.error.c_str());
      continue;
    }
    in_tokens += int64_t(reqs[i].input_ids.size());
    out_tokens += m.tokens;
    if (m.started) ttft.push_back(ms(m.first - m.enqueued));
    e2e.push_back(ms(m.last - m.enqueued));
    const int64_t per_seq = m.tokens / std::max<int64_t>(1, reqs[i].num_return_sequences);
    if (m.started && per_seq > 1 && reqs[i].streaming) tpot.push_back(ms(m.last - m.first) / double(per_seq - 1));
    itl.insert(itl.end(), m.gaps_ms.begin(), m.gaps_ms.end());
  }
  const double secs = std::max(1e-9, std::chrono::duration<double>(end - start).count());
  const Summary s_ttft = summarize(ttft), s_tpot = summarize(tpot), s_itl = summarize(itl), s_e2e = summarize(e2e);
  const std::string rate = o.request_rate > 0 ? fmt::format("{:g}/s (Poisson)", o.request_rate) : "unlimited";
  const std::string conc = o.concurrency > 0 ? std::to_string(o.concurrency) : "unlimited";
  std::printf("kiln bench: %s (%s), %zu requests", info.model.architecture.c_str(), info.target.c_str(), n);
  if (o.dataset.empty())
    std::printf(", input %g±%g, output %g±%g tokens", o.input_len, o.input_len_std, o.output_len, o.output_len_std);
  else
    std::printf(" from %s", o.dataset.c_str());
  std::printf(", rate %s, concurrency %s, %s\n", rate.c_str(), conc.c_str(), scheduler_policy_name(scheduler_policy_from_name(o.runtime.scheduler_policy)));
  std::printf("  %-22s %10.3f s\n", "duration", secs);
  std::printf("  %-22s %10.2f\n", "requests/s", double(n - size_t(failed)) / secs);
  std::printf("  %-22s %10.1f\n", "output tokens/s", double(out_tokens) / secs);
  std::printf("  %-22s %10.1f\n", "total tokens/s", double(in_tokens + out_tokens) / secs);
  std::printf("  %-22s %10s %10s %10s %10s\n", "(ms)", "mean", "p50", "p90", "p99");
  print_row("TTFT", s_ttft);
  print_row("time per output token", s_tpot);
  print_row("inter-token latency", s_itl);
  print_row("end-to-end latency", s_e2e);
  if (o.url.empty()) {
    std::printf("  KV blocks: peak %lld of %lld (%lld tokens each); preemptions %lld; reused prefix blocks %lld\n",
                (long long)st.kv_blocks_peak, (long long)st.kv_blocks_total, (long long)st.tokens_per_block,
                (long long)st.preemptions, (long long)st.reused_blocks);
    std::printf("  steps %lld, mean tokens per step %.1f\n", (long long)st.steps, st.mean_tokens_per_step);
  } else {
    std::printf("  over HTTP: %s (the executor's statistics are the server's /metrics)\n", o.url.c_str());
  }
  if (failed) std::printf("  %lld failed requests\n", (long long)failed);

  if (!o.json_out.empty()) {
    nlohmann::json j;
    j["engine"] = {{"dir", o.engine_dir},          {"architecture", info.model.architecture},
                   {"target", info.target},        {"compute_dtype", dtype_name(info.compute_dtype)},
                   {"max_batch_size", info.limits.max_batch_size}, {"max_num_tokens", info.limits.max_num_tokens},
                   {"max_seq_len", info.limits.max_seq_len},
                   {"weight_bytes_per_decode_step", weight_bytes_per_step(info)},
                   {"kv_bytes_per_token", kv_bytes_per_token(info)}};
    std::string cpu;
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string l; cpu.empty() && std::getline(cpuinfo, l);)
      if (l.rfind("model name", 0) == 0 && l.find(':') != std::string::npos) cpu = l.substr(l.find(':') + 2);
    j["host"] = {{"cpu", cpu}, {"hardware_threads", std::thread::hardware_concurrency()}, {"kiln_version", kKilnVersion}};
    j["workload"] = {{"requests", n},
                     {"dataset", o.dataset},
                     {"input_len", o.input_len},
                     {"input_len_std", o.input_len_std},
                     {"output_len", o.output_len},
                     {"output_len_std", o.output_len_std},
                     {"request_rate", o.request_rate},
                     {"concurrency", o.concurrency},
                     {"seed", o.seed}};
    j["runtime"] = {{"scheduler_policy", o.runtime.scheduler_policy},
                    {"tokens_per_block", o.runtime.tokens_per_block},
                    {"max_num_tokens", o.runtime.max_num_tokens},
                    {"enable_prefix_reuse", o.runtime.enable_prefix_reuse},
                    {"kv_blocks_total", st.kv_blocks_total},
                    {"threads", o.threads}};
    j["results"] = {{"duration_s", secs},
                    {"completed_requests", int64_t(n) - failed},
                    {"failed_requests", failed},
                    {"input_tokens", in_tokens},
                    {"output_tokens", out_tokens},
                    {"requests_per_s", double(int64_t(n) - failed) / secs},
                    {"output_tokens_per_s", double(out_tokens) / secs},
                    {"total_tokens_per_s", double(in_tokens + out_tokens) / secs},
                    {"ttft_ms", to_json(s_ttft)},
                    {"first_request_ttft_ms", tm[0].started && tm[0].error.empty() ? ms(tm[0].first - tm[0].enqueued) : 0.0},
                    {"decode_tokens_per_s", s_tpot.p50 > 0 ? 1000.0 / s_tpot.p50 : 0.0},
                    {"tpot_ms", to_json(s_tpot)},
                    {"itl_ms", to_json(s_itl)},
                    {"e2e_latency_ms", to_json(s_e2e)},
                    {"kv_blocks_peak", st.kv_blocks_peak},
                    {"preemptions", st.preemptions},
                    {"reused_blocks", st.reused_blocks},
                    {"steps", st.steps},
                    {"mean_tokens_per_step", st.mean_tokens_per_step}};
    if (!o.url.empty()) {  // the executor ran in the server
      j["url"] = o.url;
      for (const char* k : {"kv_blocks_peak", "preemptions", "reused_blocks", "steps", "mean_tokens_per_step"})
        j["results"].erase(k);
      j["runtime"].erase("kv_blocks_total");
    }
    write_json_file(o.json_out, j);
  }
  if (failed) fail("{} of {} requests failed", failed, n);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "measure throughput and latency of an engine through the executor");
  auto o = std::make_shared<BenchOptions>();
  cmd->add_option("--engine", o->engine_dir, "engine folder")->required();
  cmd->add_option("--num-requests", o->num_requests, "synthetic requests (default 64)");
  cmd->add_option("--input-len", o->input_len, "prompt tokens: mean (default 128)");
  cmd->add_option("--input-len-std", o->input_len_std, "prompt tokens: standard deviation (default 0: fixed)");
  cmd->add_option("--output-len", o->output_len, "generated tokens: mean (default 128)");
  cmd->add_option("--output-len-std", o->output_len_std, "generated tokens: standard deviation (default 0: fixed)");
  cmd->add_option("--dataset", o->dataset, "JSONL requests (as kiln run --input-file) instead of synthetic ones");
  cmd->add_option("--request-rate", o->request_rate, "arrivals per second, Poisson (default 0: all at once)");
  cmd->add_option("--concurrency", o->concurrency, "requests in flight at most (default 0: no limit)");
  cmd->add_option("--workload-seed", o->seed, "seed of the synthetic prompts, lengths and arrivals (default 0)");
  cmd->add_option("--json-out", o->json_out, "write the results here as JSON");
  cmd->add_option("--url", o->url, "benchmark the server at http://HOST:PORT over HTTP (streamed /v1/completions; "
                  "--engine names the engine it serves, for the workload)");
  cmd->add_option("--model-name", o->model_name, "with --url: the served model's name (default: the engine folder's)");
  cmd->add_option("--api-key", o->api_key, "with --url: sent as Authorization: Bearer KEY");
  cmd->add_option("--threads", o->threads, "cpu threads (default: all cores)");
  add_runtime_options(cmd, o->runtime);
  add_sampling_options(cmd, o->sampling);
  cmd->callback([o] { bench(*o); });
}

}  // namespace kiln::cli
