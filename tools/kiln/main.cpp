// kiln: convert, build, run, tokenize. See README.md for the CLI reference.
#include <cstdio>

#include "commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"kiln: an LLM inference engine (convert -> build -> run)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kiln 0.1.0");
  kiln::cli::register_convert(app);
  kiln::cli::register_build(app);
  kiln::cli::register_run(app);
  kiln::cli::register_tokenize(app);
  kiln::cli::register_bench(app);
  kiln::cli::register_quantize(app);
  kiln::cli::register_eval(app);
  kiln::cli::register_eval_perplexity(*kiln::cli::eval_group(app));
  kiln::cli::register_serve(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s (see kiln --help)\n", e.what());
    return e.get_exit_code() ? e.get_exit_code() : 2;
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
