// kiln run: generate from an engine.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "runtime/generate.h"

namespace kiln::cli {

namespace {

struct RunOptions {
  std::string engine_dir;
  std::string input_ids;
  int64_t max_new_tokens = 16;
  std::string output_file;
  std::string logits_out;
  int threads = 0;
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

void run(const RunOptions& o) {
  auto prompt = parse_ids(o.input_ids, "--input-ids");
  if (prompt.empty()) fail("--input-ids: no ids given");
  auto engine = Engine::load(o.engine_dir, o.threads);
  GreedyOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.keep_logits = !o.logits_out.empty();
  auto r = generate_greedy(*engine, prompt, g);
  std::string line;
  for (size_t i = 0; i < r.output_ids.size(); ++i) line += (i ? "," : "") + std::to_string(r.output_ids[i]);
  std::printf("%s\n", line.c_str());
  if (!o.output_file.empty()) {
    nlohmann::json j{{"output_ids", r.output_ids}};
    write_json_file(o.output_file, j);
  }
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
  cmd->add_option("--input-ids", o->input_ids, "prompt token ids, comma-separated")->required();
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate");
  cmd->add_option("--output-file", o->output_file, "write {\"output_ids\": [...]} here");
  cmd->add_option("--logits-out", o->logits_out, "write float32 context_logits and generation_logits here");
  cmd->add_option("--threads", o->threads, "cpu threads (default: all cores)");
  cmd->callback([o] { run(*o); });
}

}  // namespace kiln::cli
