// kiln run: generate from an engine.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cmd_run_batch.h"
#include "commands.h"
#include "kiln/tokenizer.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "runtime/generate.h"

namespace kiln::cli {

namespace {

struct RunOptions {
  std::string engine_dir;
  std::string input_ids;
  std::string prompt;
  bool chat = false;
  bool ignore_eos = false;
  int64_t max_new_tokens = 16;
  std::string output_file;
  std::string logits_out;
  int threads = 0;
  std::string input_file;  // JSONL requests through the executor (cmd_run_batch.cpp)
  ExecutorRunArgs exec;    // runtime and sampling flags
};

std::vector<int32_t> parse_ids(const std::string& s, const char* flag) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string tok = s.substr(i, j - i);
    char* end = nullptr;
    long v = std::strtol(tok.c_str(), &end, 10);
    if (tok.empty() || *end != '\0' || v < 0 || v > INT32_MAX) fail("{} '{}': '{}' is not a token id", flag, s, tok);
    ids.push_back(int32_t(v));
    i = j + 1;
  }
  return ids;
}

// The engine folder's tokenizer (kiln convert and build carry the HF tokenizer files along).
std::unique_ptr<Tokenizer> engine_tokenizer(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::exists(fs::path(dir) / "tokenizer.json") && !fs::exists(fs::path(dir) / "vocab.json"))
    fail("--prompt: the engine {} has no tokenizer (tokenizer.json); pass --input-ids instead", dir);
  return Tokenizer::load(dir);
}

void run(RunOptions o) {
  check_runtime_flags(o.exec.runtime, o.threads);
  // Outputs that cannot be written are refused now, not after the generation.
  if (!o.output_file.empty()) check_output_file(o.output_file, "--output-file");
  if (!o.logits_out.empty()) check_output_file(o.logits_out, "--logits-out");
  o.exec.max_new_tokens = o.max_new_tokens;
  o.exec.ignore_eos = o.ignore_eos;
  o.exec.threads = o.threads;
  o.exec.output_file = o.output_file;
  if (!o.input_file.empty()) {
    if (!o.input_ids.empty() || !o.prompt.empty() || !o.logits_out.empty())
      fail("--input-file: the requests come from the file (drop --input-ids, --prompt and --logits-out)");
    run_input_file(o.engine_dir, o.input_file, o.exec);
    return;
  }
  if (o.input_ids.empty() == o.prompt.empty()) fail("kiln run: give exactly one of --input-ids and --prompt");
  if (o.chat && o.prompt.empty()) fail("--chat: needs --prompt");
  auto engine = Engine::load(o.engine_dir, o.threads);
  std::unique_ptr<Tokenizer> tok;
  std::vector<int32_t> prompt;
  if (!o.prompt.empty()) {
    tok = engine_tokenizer(o.engine_dir);
    if (o.chat) {
      // The rendered template carries its own special tokens (BOS included), as transformers'
      // apply_chat_template(tokenize=True) does.
      prompt = tok->encode(tok->apply_chat_template({{"user", o.prompt}}, true), false);
    } else {
      prompt = tok->encode(o.prompt, true);
    }
  } else {
    prompt = parse_ids(o.input_ids, "--input-ids");
    if (prompt.empty()) fail("--input-ids: no ids given");
  }
  if (o.logits_out.empty()) {  // through the executor (sampling, beams, runtime flags)
    run_single_prompt(*engine, tok.get(), prompt, o.exec);
    return;
  }
  if (o.exec.sampling.any())
    fail("--logits-out records greedy decoding of one sequence: drop the sampling and beam flags");
  GreedyOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.keep_logits = !o.logits_out.empty();
  std::unique_ptr<IncrementalDecoder> stream;
  if (tok) {
    if (!o.ignore_eos)
      for (auto id : tok->stop_ids()) g.stop_ids.push_back(id);
    stream = std::make_unique<IncrementalDecoder>(*tok, true);
    g.on_token = [&](int32_t id) {
      std::string piece = stream->push(id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
  }
  auto r = generate_greedy(*engine, prompt, g);
  nlohmann::json j{{"output_ids", r.output_ids}};
  if (tok) {
    std::string rest = stream->flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::printf("\n");
    j["text"] = tok->decode(r.output_ids, true);
  } else {
    std::string line;
    for (size_t i = 0; i < r.output_ids.size(); ++i) line += (i ? "," : "") + std::to_string(r.output_ids[i]);
    std::printf("%s\n", line.c_str());
  }
  if (!o.output_file.empty()) write_json_file(o.output_file, j);
  if (!o.logits_out.empty()) {
    const int64_t V = engine->model().vocab_size;
    SafetensorsWriter w;
    w.add_f32("context_logits", {int64_t(prompt.size()), V}, r.context_logits.data());
    w.add_f32("generation_logits", {int64_t(r.output_ids.size()), V}, r.generation_logits.data());
    w.write(o.logits_out);
  }
}

}  // namespace

void register_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "generate from an engine");
  auto o = std::make_shared<RunOptions>();
  cmd->add_option("--engine", o->engine_dir, "engine folder")->required();
  cmd->add_option("--input-ids", o->input_ids, "prompt token ids, comma-separated");
  cmd->add_option("--prompt", o->prompt, "prompt text, encoded with the engine's tokenizer (special tokens added)");
  cmd->add_flag("--chat", o->chat, "render --prompt as a user message through the chat template");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "with --prompt: do not stop at the end-of-sequence token");
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate");
  cmd->add_option("--output-file", o->output_file,
                  "write the result here: {\"output_ids\": [...], ...}; with --input-file, one JSON line per request");
  cmd->add_option("--logits-out", o->logits_out, "write float32 context_logits and generation_logits here");
  cmd->add_option("--threads", o->threads, "cpu threads (default: all cores)");
  cmd->add_option("--input-file", o->input_file, "JSONL requests, run concurrently (results to --output-file)");
  add_sampling_options(cmd, o->exec.sampling);
  add_runtime_options(cmd, o->exec.runtime);
  cmd->callback([o] { run(*o); });
}

}  // namespace kiln::cli
