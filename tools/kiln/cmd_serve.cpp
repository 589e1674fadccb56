// kiln serve: the OpenAI-compatible HTTP server (src/serve) over an engine.
#include <filesystem>

#include "cmd_run_batch.h"
#include "commands.h"
#include "core/error.h"
#include "io/json_file.h"
#include "kiln/tokenizer.h"
#include "runtime/engine.h"
#include "serve/server.h"

namespace kiln::cli {

namespace {

struct ServeFlags {
  std::string engine_dir, model_name, chat_template;
  int threads = 0;
  RuntimeFlags runtime;
  serve::ServeOptions o;
};

void run_serve(ServeFlags f) {
  namespace fs = std::filesystem;
  check_runtime_flags(f.runtime, f.threads);
  if (f.o.port < 0 || f.o.port > 65535) fail("--port {}: must be in [0, 65535]", f.o.port);
  if (f.o.max_queued < 0) fail("--max-queued {}: must not be negative", f.o.max_queued);
  if (f.o.max_body_bytes < 1) fail("--max-body-bytes {}: must be positive", f.o.max_body_bytes);
  if (!(f.o.drain_timeout_s >= 0 && f.o.drain_timeout_s <= 86400))
    fail("--drain-timeout {}: must be in [0, 86400] seconds", f.o.drain_timeout_s);
  if (!(f.o.idle_timeout_s > 0 && f.o.idle_timeout_s <= 86400))
    fail("--idle-timeout {}: must be in (0, 86400] seconds", f.o.idle_timeout_s);
  if (!fs::exists(fs::path(f.engine_dir) / "tokenizer.json") && !fs::exists(fs::path(f.engine_dir) / "vocab.json"))
    fail("--engine {}: has no tokenizer (tokenizer.json); kiln serve takes text", f.engine_dir);
  serve::ModelContext m;
  if (!f.chat_template.empty()) m.chat_template = read_text_file(f.chat_template);
  auto tok = Tokenizer::load(f.engine_dir);
  auto engine = Engine::load(f.engine_dir, f.threads);
  m.tok = tok.get();
  m.model_name = f.model_name.empty() ? fs::path(f.engine_dir).lexically_normal().filename().string() : f.model_name;
  if (m.model_name.empty()) m.model_name = fs::absolute(f.engine_dir).lexically_normal().parent_path().filename();
  m.vocab_size = engine->model().vocab_size;
  m.max_input_len = engine->limits().max_input_len;
  m.max_seq_len = engine->limits().max_seq_len;
  Executor ex(*engine, executor_config(f.runtime, f.threads));
  serve::serve(ex, m, f.o);
}

}  // namespace

void register_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "an OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions)");
  auto f = std::make_shared<ServeFlags>();
  cmd->add_option("--engine", f->engine_dir, "engine folder (with its tokenizer)")->required();
  cmd->add_option("--host", f->o.host, "address to listen on (default 127.0.0.1)");
  cmd->add_option("--port", f->o.port, "port (default 8000; 0: any free port, see --port-file)");
  cmd->add_option("--port-file", f->o.port_file, "write the port here once listening");
  cmd->add_option("--model-name", f->model_name, "the model's name in the API (default: the engine folder's name)");
  cmd->add_option("--api-key", f->o.api_key, "require 'Authorization: Bearer KEY' on /v1/*");
  cmd->add_option("--max-queued", f->o.max_queued, "requests waiting for admission before 429 (default 1024)");
  cmd->add_option("--max-body-bytes", f->o.max_body_bytes, "largest request body; larger gets 413 (default 8 MiB)");
  cmd->add_option("--drain-timeout", f->o.drain_timeout_s,
                  "SIGTERM: seconds in-flight requests may finish (default 30)");
  cmd->add_option("--idle-timeout", f->o.idle_timeout_s, "close a connection silent this many seconds (default 60)");
  cmd->add_option("--chat-template", f->chat_template, "Jinja chat template file (default: the tokenizer's)");
  cmd->add_option("--threads", f->threads, "cpu threads (default: all cores)");
  add_runtime_options(cmd, f->runtime);
  cmd->callback([f] { run_serve(*f); });
}

}  // namespace kiln::cli
