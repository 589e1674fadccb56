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
void register_serve(CLI::App& app);

}  // namespace kiln::cli
