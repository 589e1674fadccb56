// Each kiln subcommand lives in its own file and registers itself on the CLI app here.
// A command's callback throws kiln::Error on bad input; main() prints "error: <message>" and exits 1.
#pragma once
#include <CLI/CLI.hpp>

namespace kiln::cli {

void register_convert(CLI::App& app);
void register_build(CLI::App& app);
void register_run(CLI::App& app);
void register_tokenize(CLI::App& app);  // tokenize and detokenize
void register_bench(CLI::App& app);
void register_eval(CLI::App& app);  // kiln eval summarize, mmlu, compare (cmd_eval.cpp)

// `kiln eval`: the group its subcommands register under, made by the first caller, so that eval commands
// from several files can share it.
inline CLI::App* eval_group(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands({}))
    if (sub->get_name() == "eval") return sub;
  CLI::App* ev = app.add_subcommand("eval", "accuracy of an engine: perplexity, ROUGE, MMLU, report comparison");
  ev->require_subcommand(1);
  return ev;
}
void register_serve(CLI::App& app);
void register_quantize(CLI::App& app);
void register_eval_perplexity(CLI::App& eval);  // kiln eval perplexity

}  // namespace kiln::cli
