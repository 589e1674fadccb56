// kiln eval summarize | mmlu | compare: accuracy of an engine on ROUGE and MMLU, and side-by-side reports
// (docs/eval.md). The metrics and their data live in src/eval; this file parses flags, loads engines and prints.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cmd_run_batch.h"
#include "commands.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "eval/compare.h"
#include "eval/mmlu.h"
#include "eval/mmlu_run.h"
#include "eval/rouge.h"
#include "eval/sha256.h"
#include "eval/summarize.h"
#include "io/json_file.h"
#include "kiln/tokenizer.h"
#include "runtime/engine.h"

namespace kiln::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kReportFormat = 1;

// The command line as typed (argv joined; arguments with spaces quoted), from /proc/self/cmdline.
std::string command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()), out, arg;
  for (char c : all) {
    if (c != '\0') {
      arg += c;
      continue;
    }
    if (!out.empty()) out += ' ';
    out += arg.find_first_of(" \t\n'\"") == std::string::npos ? arg : json(arg).dump();
    arg.clear();
  }
  return out;
}

// engine.json without its tactics (GEMM algorithm lists), and where it was loaded from.
json engine_summary(const std::string& dir) {
  json j = read_json_file((fs::path(dir) / "engine.json").string());
  j.erase("tactics");
  return {{"dir", dir}, {"config", j}};
}

struct LoadedEngine {
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<Executor> ex;
};

LoadedEngine load_engine(const std::string& dir, const RuntimeFlags& rt, int threads) {
  LoadedEngine e;
  const fs::path p(dir);
  if (!fs::exists(p / "tokenizer.json") && !fs::exists(p / "vocab.json"))
    fail("--engine {}: no tokenizer.json (or vocab.json) in the engine folder; eval needs the model's tokenizer", dir);
  e.engine = Engine::load(dir, threads);
  e.tok = Tokenizer::load(dir);
  e.ex = std::make_unique<Executor>(*e.engine, executor_config(rt, threads));
  return e;
}

bool is_engine_dir(const std::string& path) {
  return fs::is_directory(path) && fs::exists(fs::path(path) / "engine.json");
}

// ---- summarize ----

struct SummarizeArgs {
  std::string engine_dir, dataset, compare_with, json_out;
  eval::DatasetFields fields;
  eval::SummarizeOptions gen;
  std::optional<double> rouge1_threshold;
  int threads = 0;
  RuntimeFlags runtime;
};

json rouge_figures(const eval::RougeScores& s) {
  json j = json::object();
  for (int k = 0; k < eval::kNumRougeKeys; ++k) j[eval::rouge_key_name(eval::RougeKey(k))] = 100.0 * s[k].fmeasure;
  return j;
}

eval::RougeScores score_all(const std::vector<std::string>& preds, const std::vector<eval::SummarizeRecord>& recs) {
  eval::RougeSummary sum;
  for (size_t i = 0; i < recs.size(); ++i) sum.add(eval::rouge(preds[i], recs[i].reference));
  return sum.finish();
}

void summarize(const SummarizeArgs& a) {
  if (!a.json_out.empty()) check_output_file(a.json_out, "--json-out");
  check_runtime_flags(a.runtime, a.threads);
  if (a.fields.max_samples < 0) fail("--max-samples {}: must be positive (0: all)", a.fields.max_samples);
  const auto records = eval::read_summarize_dataset(a.dataset, a.fields);
  std::vector<std::string> preds;
  {
    LoadedEngine e = load_engine(a.engine_dir, a.runtime, a.threads);
    preds = eval::generate_summaries(*e.ex, *e.tok, records, a.gen, a.dataset);
  }
  const eval::RougeScores mine = score_all(preds, records);
  std::optional<eval::RougeScores> other;
  std::vector<std::string> other_preds;
  if (!a.compare_with.empty()) {
    if (is_engine_dir(a.compare_with)) {
      LoadedEngine e = load_engine(a.compare_with, a.runtime, a.threads);
      other_preds = eval::generate_summaries(*e.ex, *e.tok, records, a.gen, a.dataset);
    } else {
      other_preds = eval::read_predictions(a.compare_with, records.size());
    }
    other = score_all(other_preds, records);
  }
  std::printf("ROUGE F-measure x 100 over %zu records of %s\n", records.size(), a.dataset.c_str());
  std::printf("  %-10s %12s", "", "engine");
  if (other) std::printf(" %12s %10s", "compare", "diff");
  std::printf("\n");
  for (int k = 0; k < eval::kNumRougeKeys; ++k) {
    std::printf("  %-10s %12.4f", eval::rouge_key_name(eval::RougeKey(k)), 100 * mine[k].fmeasure);
    if (other)
      std::printf(" %12.4f %+10.4f", 100 * (*other)[k].fmeasure, 100 * (mine[k].fmeasure - (*other)[k].fmeasure));
    std::printf("\n");
  }
  if (!a.json_out.empty()) {
    json j = {{"eval", "summarize"},
              {"format_version", kReportFormat},
              {"command", command_line()},
              {"engine", engine_summary(a.engine_dir)},
              {"dataset", {{"path", a.dataset}, {"sha256", eval::sha256_file(a.dataset)}, {"records", records.size()}}},
              {"settings",
               {{"input_field", a.fields.input},
                {"reference_field", a.fields.reference},
                {"max_samples", a.fields.max_samples},
                {"prompt_suffix", a.gen.prompt_suffix},
                {"output_len", a.gen.output_len},
                {"max_input_len", a.gen.max_input_len}}},
              {"figures", rouge_figures(mine)},
              {"predictions", preds}};
    if (other) j["compare_with"] = {{"source", a.compare_with}, {"figures", rouge_figures(*other)}};
    write_json_file(a.json_out, j);
  }
  std::fflush(stdout);  // the figures before the error line
  if (a.rouge1_threshold && 100 * mine[eval::kRouge1].fmeasure < *a.rouge1_threshold)
    fail("rouge1 {:.4f} is below --rouge1-threshold {}", 100 * mine[eval::kRouge1].fmeasure, *a.rouge1_threshold);
}

// ---- mmlu ----

struct MmluArgs {
  std::string engine_dir, data_dir, method = "loglikelihood", format = "qa", json_out;
  std::vector<std::string> subjects;
  int ntrain = 5;
  int64_t max_input_len = 0;
  std::optional<double> accuracy_threshold;
  int threads = 0;
  RuntimeFlags runtime;
};

void mmlu(const MmluArgs& a) {
  if (!a.json_out.empty()) check_output_file(a.json_out, "--json-out");
  check_runtime_flags(a.runtime, a.threads);
  eval::MmluRunOptions o;
  o.method = eval::mmlu_method_from_name(a.method);
  o.format = eval::cloze_format_from_name(a.format);
  if (o.method == eval::MmluMethod::Continuation && a.runtime.enable_prefix_reuse)
    fail(
        "--enable-prefix-reuse: not with --method continuation (its requests need the logits of every prompt "
        "position, and reused blocks are not computed)");
  if (a.ntrain < 0) fail("--ntrain {}: must not be negative", a.ntrain);
  if (a.max_input_len < 0) fail("--max-input-len {}: must be positive (0: the engine's)", a.max_input_len);
  o.ntrain = a.ntrain;
  o.max_input_len = a.max_input_len;
  const eval::MmluData data = eval::load_mmlu(a.data_dir, a.subjects);
  LoadedEngine e = load_engine(a.engine_dir, a.runtime, a.threads);
  const auto answers = eval::run_mmlu(*e.ex, *e.tok, data, o);
  eval::MmluTally tally;
  json questions = json::object();
  for (size_t s = 0; s < data.subjects.size(); ++s) {
    const auto& sub = data.subjects[s];
    json list = json::array();
    for (size_t q = 0; q < sub.test.size(); ++q) {
      const auto& ans = answers[s][q];
      const bool ok = ans.choice == sub.test[q].answer;
      tally.add(sub, ok);
      json row = {{"line", sub.test[q].line},
                  {"answer", std::string(1, char('A' + sub.test[q].answer))},
                  {"choice", ans.choice < 0 ? std::string() : std::string(1, char('A' + ans.choice))},
                  {"k", ans.k},
                  {"prompt_tokens", ans.prompt_tokens}};
      if (o.method == eval::MmluMethod::Generate)
        row["output"] = ans.output;
      else
        row["loglikelihoods"] = ans.scores;
      list.push_back(std::move(row));
    }
    questions[sub.name] = std::move(list);
  }
  json figures = {{"accuracy", 100 * tally.all.accuracy()}};
  std::printf("MMLU (%s%s%s, %d-shot) on %s: accuracy %%\n", eval::mmlu_method_name(o.method),
              o.method == eval::MmluMethod::Continuation ? " " : "",
              o.method == eval::MmluMethod::Continuation ? eval::cloze_format_name(o.format) : "", a.ntrain,
              a.data_dir.c_str());
  for (const auto& [name, c] : tally.subjects) {
    std::printf("  %-40s %8.2f  (%lld/%lld)\n", name.c_str(), 100 * c.accuracy(), (long long)c.correct,
                (long long)c.total);
    figures["subject/" + name] = 100 * c.accuracy();
  }
  for (const auto& [name, c] : tally.categories) {
    std::printf("  category %-31s %8.2f  (%lld/%lld)\n", name.c_str(), 100 * c.accuracy(), (long long)c.correct,
                (long long)c.total);
    figures["category/" + name] = 100 * c.accuracy();
  }
  std::printf("  %-40s %8.2f  (%lld/%lld)\n", "weighted accuracy", 100 * tally.all.accuracy(),
              (long long)tally.all.correct, (long long)tally.all.total);
  if (!a.json_out.empty()) {
    json subjects = json::array();
    for (const auto& s : data.subjects) subjects.push_back(s.name);
    write_json_file(
        a.json_out,
        {{"eval", "mmlu"},
         {"format_version", kReportFormat},
         {"command", command_line()},
         {"engine", engine_summary(a.engine_dir)},
         {"dataset",
          {{"path", a.data_dir}, {"sha256", data.sha256}, {"subjects", subjects}, {"questions", data.num_test()}}},
         {"settings",
          {{"method", a.method},
           {"continuation_format", a.format},
           {"ntrain", a.ntrain},
           {"max_input_len", a.max_input_len}}},
         {"figures", figures},
         {"questions", questions}});
  }
  std::fflush(stdout);
  if (a.accuracy_threshold && 100 * tally.all.accuracy() < *a.accuracy_threshold)
    fail("accuracy {:.2f}% is below --accuracy-threshold {}", 100 * tally.all.accuracy(), *a.accuracy_threshold);
}

// ---- compare ----

struct CompareArgs {
  std::vector<std::string> reports, tolerance_for;
  double tolerance = 1.0;
  std::vector<std::string> figures;
};

void compare(const CompareArgs& a) {
  if (a.reports.size() < 2) fail("kiln eval compare: give at least two reports (the first is the baseline)");
  eval::CompareOptions o;
  if (!(a.tolerance >= 0)) fail("--tolerance {}: must not be negative", a.tolerance);
  o.tolerance = a.tolerance;
  o.figures = a.figures;
  for (const auto& t : a.tolerance_for) {
    const size_t eq = t.rfind('=');
    double v = -1;
    try {
      v = eq == std::string::npos ? -1 : std::stod(t.substr(eq + 1));
    } catch (const std::exception&) {
    }
    if (eq == std::string::npos || eq == 0 || !(v >= 0)) fail("--tolerance-for '{}': expected FIGURE=POINTS", t);
    o.per_figure[t.substr(0, eq)] = v;
  }
  std::vector<json> reports;
  for (const auto& r : a.reports) reports.push_back(read_json_file(r));
  const eval::CompareResult res = eval::compare_reports(reports, a.reports, o);
  std::printf("%s", res.table(a.reports).c_str());
  size_t failed = 0;
  for (const auto& r : res.rows) failed += !r.pass;
  std::fflush(stdout);
  if (failed)
    fail("{} of {} figures fell below {} by more than their tolerance", failed, res.rows.size(), a.reports[0]);
  std::printf("pass: every figure within its tolerance of %s\n", a.reports[0].c_str());
}

}  // namespace

void register_eval(CLI::App& app) {
  CLI::App* ev = eval_group(app);

  auto* s = ev->add_subcommand("summarize", "generate summaries with an engine and score them with ROUGE");
  auto sa = std::make_shared<SummarizeArgs>();
  s->add_option("--engine", sa->engine_dir, "engine folder")->required();
  s->add_option("--dataset", sa->dataset, "JSONL records with an input and a reference field")->required();
  s->add_option("--input-field", sa->fields.input, "the input's field (default article)");
  s->add_option("--reference-field", sa->fields.reference, "the reference summary's field (default highlights)");
  s->add_option("--max-samples", sa->fields.max_samples, "the first N records only (default: all)");
  s->add_option("--max-input-len", sa->gen.max_input_len, "prompt tokens at most (default: the engine's)");
  s->add_option("--output-len", sa->gen.output_len, "generated tokens at most (default 100)");
  s->add_option("--prompt-suffix", sa->gen.prompt_suffix, "appended to each input (default \" TL;DR: \")");
  s->add_option("--compare-with", sa->compare_with, "another engine folder, or a JSONL of saved predictions");
  s->add_option("--rouge1-threshold", sa->rouge1_threshold, "exit non-zero when ROUGE-1 (x 100) is below this");
  s->add_option("--json-out", sa->json_out, "write the report here as JSON");
  s->add_option("--threads", sa->threads, "cpu threads (default: all cores)");
  add_runtime_options(s, sa->runtime);
  s->callback([sa] { summarize(*sa); });

  auto* m = ev->add_subcommand("mmlu", "multiple-choice accuracy on MMLU-layout data (dev/ and test/ CSV files)");
  auto ma = std::make_shared<MmluArgs>();
  m->add_option("--engine", ma->engine_dir, "engine folder")->required();
  m->add_option("--data-dir", ma->data_dir, "folder with dev/SUBJECT_dev.csv and test/SUBJECT_test.csv")->required();
  m->add_option("--ntrain", ma->ntrain, "few-shot examples per prompt (default 5)");
  m->add_option("--subjects", ma->subjects, "these subjects only (default: every test file)");
  m->add_option("--method", ma->method, "generate | loglikelihood (default) | continuation");
  m->add_option("--continuation-format", ma->format, "continuation prompts: qa (default, lm-eval's) | plain");
  m->add_option("--max-input-len", ma->max_input_len, "prompt tokens at most (default: the engine's)");
  m->add_option("--accuracy-threshold", ma->accuracy_threshold, "exit non-zero when accuracy (%) is below this");
  m->add_option("--json-out", ma->json_out, "write the report here as JSON");
  m->add_option("--threads", ma->threads, "cpu threads (default: all cores)");
  add_runtime_options(m, ma->runtime);
  m->callback([ma] { mmlu(*ma); });

  auto* c = ev->add_subcommand("compare", "eval reports side by side, each against the first, with tolerances");
  auto ca = std::make_shared<CompareArgs>();
  c->add_option("reports", ca->reports, "--json-out files of kiln eval summarize or mmlu; the first is the baseline")
      ->required();
  c->add_option("--tolerance", ca->tolerance, "points a figure may fall below the baseline (default 1.0)");
  c->add_option("--tolerance-for", ca->tolerance_for, "FIGURE=POINTS: another tolerance for one figure");
  c->add_option("--figures", ca->figures, "compare these figures only (default: all of the baseline's)");
  c->callback([ca] { compare(*ca); });
}

}  // namespace kiln::cli
