// kiln eval mmlu's scoring through the Executor (docs/eval.md):
//   generate       greedy, 2 new tokens; the choice is the letter the output starts with (after spaces), as
//                  TensorRT-LLM's mmlu.py; none when it starts with something else;
//   loglikelihood  the log-likelihood of " A", " B", " C", " D" after the letter prompt, as lm-eval; the choice is
//                  the largest (the first of equals);
//   continuation   the log-likelihood of each cloze candidate (mmlu.h: " " + the choice's text in format qa,
//                  "\n" + it in format plain) after the cloze prompt, per UTF-8 byte of the candidate (lm-eval's
//                  acc_norm); the choice is the largest per byte.
// A continuation's log-likelihood: ctx = encode(prompt), whole = encode(prompt + continuation); its tokens are
// whole[len(ctx):] (ctx must be a proper prefix of whole), summed log-softmax of the rows before each. When every
// continuation is one token, one request with the prompt gives all of them (its generation row 0); otherwise one
// request per continuation returns its context rows.
// k (few-shot examples) starts at ntrain and drops while the prompt's tokens (plus, for continuation, the longest
// continuation's, encoded alone) exceed max_input_len.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "eval/mmlu.h"
#include "kiln/executor.h"
#include "kiln/tokenizer.h"

namespace kiln::eval {

enum class MmluMethod { Generate, LogLikelihood, Continuation };
MmluMethod mmlu_method_from_name(const std::string& name);  // throws naming the accepted values
const char* mmlu_method_name(MmluMethod m);

struct MmluRunOptions {
  MmluMethod method = MmluMethod::LogLikelihood;
  ClozeFormat format = ClozeFormat::QA;  // continuation
  int ntrain = 5;
  int64_t max_input_len = 0;  // 0: the engine's
};

struct MmluAnswer {
  int choice = -1;                 // 0..3, -1: none (generate)
  std::array<double, 4> scores{};  // log-likelihoods (continuation: the sums, before the per-byte division)
  int k = 0;                       // few-shot examples in the prompt
  int64_t prompt_tokens = 0;
  std::string output;  // generate: the generated text
};

// Answers per subject, per test question, in data order.
std::vector<std::vector<MmluAnswer>> run_mmlu(Executor& ex, const Tokenizer& tok, const MmluData& data,
                                              const MmluRunOptions& o);

// Log-softmax of `row` [V] at `id`, in double.
double log_softmax_at(const float* row, size_t vocab, int32_t id);

}  // namespace kiln::eval
