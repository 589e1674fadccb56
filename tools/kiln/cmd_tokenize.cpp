// kiln tokenize --tokenizer PATH --text TEXT [--no-special-tokens]   -> {"ids": [...]}
// kiln detokenize --tokenizer PATH --ids 1,2,3                        -> {"text": "..."}
// PATH: a tokenizer.json, a vocab.json (merges.txt beside it) or a model folder holding either.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "tokenizer/cli_io.h"

namespace kiln::cli {

void register_tokenize(CLI::App& app) {
  struct TokOpts {
    std::string tokenizer, text;
    bool no_special = false;
  };
  auto t = std::make_shared<TokOpts>();
  CLI::App* tok = app.add_subcommand("tokenize", "Encode text to token ids (prints {\"ids\": [...]})");
  tok->add_option("--tokenizer", t->tokenizer, "tokenizer.json, vocab.json or a model folder")->required();
  tok->add_option("--text", t->text, "text to encode")->required();
  tok->add_flag("--no-special-tokens", t->no_special, "do not add the post-processor's special tokens (e.g. BOS)");
  tok->callback([t] {
    std::string out = kiln::tok::tokenize_json(t->tokenizer, t->text, !t->no_special);
    std::printf("%s\n", out.c_str());
  });

  struct DetokOpts {
    std::string tokenizer, ids;
  };
  auto d = std::make_shared<DetokOpts>();
  CLI::App* detok = app.add_subcommand("detokenize", "Decode token ids to text (prints {\"text\": \"...\"})");
  detok->add_option("--tokenizer", d->tokenizer, "tokenizer.json, vocab.json or a model folder")->required();
  detok->add_option("--ids", d->ids, "comma-separated token ids, e.g. 1,2,3")->required();
  detok->callback([d] {
    std::string out = kiln::tok::detokenize_json(d->tokenizer, d->ids);
    std::printf("%s\n", out.c_str());
  });
}

}  // namespace kiln::cli
