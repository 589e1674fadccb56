// kiln eval perplexity: token perplexity, word perplexity and bits per byte of an engine over a text dataset, with
// lm-eval's loglikelihood_rolling windows (src/runtime/perplexity.h).
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "commands.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "core/progress.h"
#include "io/json_file.h"
#include "kiln/tokenizer.h"
#include "runtime/engine.h"
#include "runtime/perplexity.h"
#include "text_dataset.h"

namespace kiln::cli {

namespace {

struct PerplexityOptions {
  std::string engine_dir, dataset, json_out;
  int64_t max_length = 0;  // 0: the engine's max_seq_len
  int threads = 0;
  bool progress = true;
};

// Python's len(re.split(r"\s+", text)): runs of whitespace plus one.
int64_t count_words(const std::string& s) {
  int64_t runs = 0;
  bool in = false;
  for (unsigned char c : s) {
    const bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    if (ws && !in) ++runs;
    in = ws;
  }
  return runs + 1;
}

void run_perplexity(const PerplexityOptions& o) {
  if (!o.json_out.empty()) check_output_file(o.json_out, "--json-out");
  const auto docs = read_text_dataset(o.dataset, "--dataset");
  auto engine = Engine::load(o.engine_dir, o.threads);
  const int64_t L = o.max_length > 0 ? o.max_length : engine->limits().max_seq_len;
  if (o.max_length < 0) fail("--max-length {}: must be positive", o.max_length);
  if (L > engine->limits().max_seq_len)
    fail("--max-length {}: longer than the engine's max_seq_len {}", L, engine->limits().max_seq_len);
  if (!std::filesystem::exists(std::filesystem::path(o.engine_dir) / "tokenizer.json") &&
      !std::filesystem::exists(std::filesystem::path(o.engine_dir) / "vocab.json"))
    fail("--engine {}: no tokenizer (tokenizer.json) to encode the dataset with", o.engine_dir);
  auto tok = Tokenizer::load(o.engine_dir);
  const ModelConfig& m = engine->model();
  std::optional<int32_t> prefix = tok->bos_id();
  if (!prefix && m.bos_token_id >= 0) prefix = int32_t(m.bos_token_id);
  if (!prefix && !m.eos_token_ids.empty()) prefix = int32_t(m.eos_token_ids[0]);
  if (!prefix) fail("--engine {}: no BOS or EOS token to start a document's first window with", o.engine_dir);
  std::vector<RollingWindow> windows;
  int64_t tokens = 0, words = 0, bytes = 0;
  for (auto& d : docs) {
    const auto ids = tok->encode(d, false);
    auto w = rolling_windows(ids, *prefix, L);
    windows.insert(windows.end(), std::make_move_iterator(w.begin()), std::make_move_iterator(w.end()));
    tokens += int64_t(ids.size());
    words += count_words(d);
    bytes += int64_t(d.size());
  }
  if (tokens == 0) fail("--dataset {}: no tokens", o.dataset);
  std::optional<ProgressBar> bar;
  if (o.progress) bar.emplace("perplexity", int64_t(windows.size()));
  const double nll = windows_nll(*engine, windows, [&](size_t done) {
    if (bar) bar->update(int64_t(done));
  });
  if (bar) bar->finish();
  nlohmann::json j = {
      {"engine", o.engine_dir},
      {"dataset", o.dataset},
      {"documents", docs.size()},
      {"tokens", tokens},
      {"words", words},
      {"bytes", bytes},
      {"windows", windows.size()},
      {"max_length", L},
      {"window_policy", "lm-eval loglikelihood_rolling: disjoint windows of at most max_length predicted tokens, "
                        "each scored with the previous tokens as context; the first starts with the BOS token"},
      {"nll", nll},
      {"token_perplexity", std::exp(nll / double(tokens))},
      {"word_perplexity", std::exp(nll / double(words))},
      {"bits_per_byte", nll / (double(bytes) * std::log(2.0))},
  };
  std::printf("token perplexity %.6f  word perplexity %.6f  bits per byte %.6f  (%lld tokens, %zu windows of at "
              "most %lld)\n",
              j["token_perplexity"].get<double>(), j["word_perplexity"].get<double>(), j["bits_per_byte"].get<double>(),
              (long long)tokens, windows.size(), (long long)L);
  if (!o.json_out.empty()) write_file_atomic(o.json_out, j.dump(1) + "\n");
}

}  // namespace

void register_eval_perplexity(CLI::App& eval) {
  auto* cmd = eval.add_subcommand("perplexity", "token/word perplexity and bits per byte over a text dataset");
  auto o = std::make_shared<PerplexityOptions>();
  cmd->add_option("--engine", o->engine_dir, "engine folder (with its tokenizer)")->required();
  cmd->add_option("--dataset", o->dataset, "text: plain (one document) or *.jsonl of {\"text\": ...}")->required();
  cmd->add_option("--max-length", o->max_length, "tokens per window (default: the engine's max_seq_len)");
  cmd->add_option("--json-out", o->json_out, "write the figures here as JSON");
  cmd->add_option("--threads", o->threads, "cpu threads (default: all cores)");
  cmd->add_flag("!--no-progress", o->progress, "no progress bar");
  cmd->callback([o] { run_perplexity(*o); });
}

}  // namespace kiln::cli
