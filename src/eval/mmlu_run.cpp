#include "eval/mmlu_run.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "eval/runner.h"
#include "runtime/engine.h"

namespace kiln::eval {
namespace {

constexpr int kGenerateTokens = 2;

// One scoring job: a prompt and its continuations' token ids.
struct Job {
  size_t subject = 0, question = 0;
  std::vector<int32_t> ctx;                   // the prompt's ids
  std::array<std::vector<int32_t>, 4> conts;  // each continuation's ids after ctx (empty for generate)
  std::array<size_t, 4> bytes{};              // continuation: UTF-8 bytes of each continuation
  int k = 0;
};

std::string letter(int j) { return std::string(1, char('A' + j)); }

int argmax_first(const std::array<double, 4>& v) {
  int best = 0;
  for (int j = 1; j < 4; ++j)
    if (v[size_t(j)] > v[size_t(best)]) best = j;
  return best;
}

Job make_job(const Tokenizer& tok, const MmluSubject& s, size_t qi, const MmluRunOptions& o, int64_t max_input) {
  const MmluQuestion& q = s.test[qi];
  const MmluMethod m = o.method;
  Job job;
  std::array<std::string, 4> conts;
  for (int j = 0; j < 4; ++j)
    conts[size_t(j)] = m == MmluMethod::Continuation ? cloze_candidate(q, j, o.format) : " " + letter(j);
  int64_t extra = 0;  // continuation: the longest one's tokens (encoded alone) must fit beside the prompt
  if (m == MmluMethod::Continuation)
    for (const auto& c : conts) extra = std::max<int64_t>(extra, int64_t(tok.encode(c, false).size()));
  auto prompt_of = [&](int k) {
    return m == MmluMethod::Continuation ? cloze_prompt(s, q, k, o.format) : letter_prompt(s, q, k);
  };
  int k = std::min<int>(o.ntrain, int(s.dev.size()));
  std::string prompt = prompt_of(k);
  job.ctx = tok.encode(prompt);
  while (k > 0 && int64_t(job.ctx.size()) + extra > max_input) {
    prompt = prompt_of(--k);
    job.ctx = tok.encode(prompt);
  }
  if (int64_t(job.ctx.size()) + extra > max_input)
    fail("test/{}_test.csv:{}: the prompt without examples is {} tokens, over the input limit {}", s.name, q.line,
         int64_t(job.ctx.size()) + extra, max_input);
  job.k = k;
  if (m == MmluMethod::Generate) return job;
  for (size_t j = 0; j < 4; ++j) {
    std::vector<int32_t> whole = tok.encode(prompt + conts[j]);
    if (whole.size() <= job.ctx.size() || !std::equal(job.ctx.begin(), job.ctx.end(), whole.begin()))
      fail(
          "test/{}_test.csv:{}: the prompt's tokens are not a prefix of the tokens of prompt + '{}' (the tokenizer "
          "merges across the boundary)",
          s.name, q.line, conts[j].substr(0, 20));
    job.conts[j].assign(whole.begin() + ptrdiff_t(job.ctx.size()), whole.end());
    job.bytes[j] = conts[j].size();
  }
  return job;
}

}  // namespace

MmluMethod mmlu_method_from_name(const std::string& name) {
  if (name == "generate") return MmluMethod::Generate;
  if (name == "loglikelihood") return MmluMethod::LogLikelihood;
  if (name == "continuation") return MmluMethod::Continuation;
  fail("--method '{}': expected generate, loglikelihood or continuation", name);
}

const char* mmlu_method_name(MmluMethod m) {
  return m == MmluMethod::Generate ? "generate" : m == MmluMethod::LogLikelihood ? "loglikelihood" : "continuation";
}

double log_softmax_at(const float* row, size_t vocab, int32_t id) {
  double mx = -INFINITY;
  for (size_t v = 0; v < vocab; ++v) mx = std::max(mx, double(row[v]));
  double sum = 0;
  for (size_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - mx);
  return double(row[id]) - mx - std::log(sum);
}

std::vector<std::vector<MmluAnswer>> run_mmlu(Executor& ex, const Tokenizer& tok, const MmluData& data,
                                              const MmluRunOptions& o) {
  const EngineLimits& lim = ex.engine().limits();
  const int64_t max_input = o.max_input_len ? std::min(o.max_input_len, lim.max_input_len) : lim.max_input_len;
  const size_t V = size_t(ex.engine().info().model.vocab_size);
  std::vector<Job> jobs;
  std::vector<std::vector<MmluAnswer>> answers(data.subjects.size());
  for (size_t si = 0; si < data.subjects.size(); ++si) {
    answers[si].resize(data.subjects[si].test.size());
    for (size_t qi = 0; qi < data.subjects[si].test.size(); ++qi) {
      Job j = make_job(tok, data.subjects[si], qi, o, max_input);
      j.subject = si;
      j.question = qi;
      answers[si][qi].k = j.k;
      answers[si][qi].prompt_tokens = int64_t(j.ctx.size());
      jobs.push_back(std::move(j));
    }
  }
  bool one_token = o.method != MmluMethod::Generate;
  for (const Job& j : jobs)
    for (const auto& c : j.conts) one_token = one_token && c.size() == 1;
  // Request r: job r / per, continuation r % per (per = 1: every continuation from one request).
  const size_t per = o.method == MmluMethod::Generate || one_token ? 1 : 4;
  auto describe = [&](size_t r) {
    const Job& j = jobs[r / per];
    return fmt::format("test/{}_test.csv:{}", data.subjects[j.subject].name,
                       data.subjects[j.subject].test[j.question].line);
  };
  RunSpec spec;
  spec.count = jobs.size() * per;
  spec.label = std::string("mmlu ") + mmlu_method_name(o.method);
  spec.describe = describe;
  spec.make = [&](size_t r) {
    const Job& j = jobs[r / per];
    Request q;
    q.end_id = -1;
    if (o.method == MmluMethod::Generate) {
      q.input_ids = j.ctx;
      q.max_new_tokens = kGenerateTokens;
      q.end_id = tok.eos_id() ? *tok.eos_id() : -1;
    } else if (per == 1) {
      q.input_ids = j.ctx;
      q.max_new_tokens = 1;
      q.return_generation_logits = true;
    } else {  // the prompt and the continuation but its last token: context rows ctx-1.. score it
      const auto& c = j.conts[r % per];
      q.input_ids = j.ctx;
      q.input_ids.insert(q.input_ids.end(), c.begin(), c.end() - 1);
      q.max_new_tokens = 1;
      q.return_context_logits = true;
    }
    return q;
  };
  spec.on_done = [&](size_t r, Response& resp) {
    const Job& j = jobs[r / per];
    MmluAnswer& a = answers[j.subject][j.question];
    if (o.method == MmluMethod::Generate) {
      a.output = tok.decode(resp.output_ids.at(0), true);
      const size_t p = a.output.find_first_not_of(" \t\n");
      a.choice = p != std::string::npos && a.output[p] >= 'A' && a.output[p] <= 'D' ? a.output[p] - 'A' : -1;
      return;
    }
    if (per == 1) {
      if (resp.generation_logits.size() < V) fail("{}: no generation logits came back", describe(r));
      for (size_t c = 0; c < 4; ++c) a.scores[c] = log_softmax_at(resp.generation_logits.data(), V, j.conts[c][0]);
      return;
    }
    const auto& cont = j.conts[r % per];
    const size_t rows = j.ctx.size() + cont.size() - 1;
    if (resp.context_logits.size() != rows * V)
      fail(
          "{}: {} context-logits rows came back for a {}-token prompt (--enable-prefix-reuse skips the rows of "
          "reused blocks; leave it off for this method)",
          describe(r), resp.context_logits.size() / V, rows);
    double ll = 0;
    for (size_t t = 0; t < cont.size(); ++t)
      ll += log_softmax_at(resp.context_logits.data() + (j.ctx.size() - 1 + t) * V, V, cont[t]);
    a.scores[r % per] = ll;
  };
  run_requests(ex, spec);
  for (size_t r = 0; r < jobs.size() && o.method != MmluMethod::Generate; ++r) {
    const Job& j = jobs[r];
    MmluAnswer& a = answers[j.subject][j.question];
    std::array<double, 4> key = a.scores;
    if (o.method == MmluMethod::Continuation)
      for (size_t c = 0; c < 4; ++c) key[c] /= double(j.bytes[c]);
    a.choice = argmax_first(key);
  }
  return answers;
}

}  // namespace kiln::eval
