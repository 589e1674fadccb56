// kiln eval summarize's data and generation (docs/eval.md): a JSONL dataset with an input and a reference field
// per line; a summary per record generated greedily through the Executor from
//   encode(input + prompt_suffix), the input's tokens cut (from the end) so that the whole fits max_input_len;
// the decoded output (special tokens skipped) with surrounding whitespace stripped is the prediction.
#pragma once
#include <string>
#include <vector>

#include "kiln/executor.h"
#include "kiln/tokenizer.h"

namespace kiln::eval {

struct SummarizeRecord {
  std::string input, reference;
  int line = 0;
};

struct DatasetFields {
  std::string input = "article", reference = "highlights";
  int64_t max_samples = 0;  // 0: all
};

// Errors name the file and line: malformed JSON, a line that is not an object, a missing field or one that is not
// a string; an empty dataset (no record) is an error too.
std::vector<SummarizeRecord> read_summarize_dataset(const std::string& path, const DatasetFields& f);

struct SummarizeOptions {
  std::string prompt_suffix = " TL;DR: ";
  int32_t output_len = 100;
  int64_t max_input_len = 0;  // 0: the engine's (and at most max_seq_len - output_len)
};

std::vector<std::string> generate_summaries(Executor& ex, const Tokenizer& tok,
                                            const std::vector<SummarizeRecord>& records, const SummarizeOptions& o,
                                            const std::string& dataset_name);

// Saved outputs: JSONL, one line per record in dataset order, the text in "prediction" (or "text", as
// `kiln run --output-file` writes); or a report of kiln eval summarize (--json-out), its "predictions". It must
// hold at least `count`; the first `count` are used.
std::vector<std::string> read_predictions(const std::string& path, size_t count);

}  // namespace kiln::eval
