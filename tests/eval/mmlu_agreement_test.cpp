// kiln eval mmlu's scoring on a float32 cpu engine of tiny-code against transformers (float32, from_pretrained):
// tests/data/eval/mmlu_reference.json, written on the GPU machine (H100 run of 2026-12-06 04:43 UTC, transformers
// on the CPU) by scripts/dev/make_mmlu_reference.py, for tests/data/eval/code_mmlu: the letter method and both cloze
// formats (qa, plain) on all 90 questions (the test runs qa on 30 of them). Every question's choice must be transformers' choice; the prompts' token
// counts and example counts must be equal, and the log-likelihoods close.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "build/engine_builder.h"
#include "common/test_util.h"
#include "convert/convert.h"
#include "eval/mmlu_run.h"
#include "io/json_file.h"
#include "kiln/executor.h"
#include "runtime/backend_factory.h"
#include "runtime/engine.h"

namespace kiln::eval {
namespace {

const std::string kData = "/tests/data/eval/code_mmlu";
// |kiln - transformers| per log-likelihood: both are float32 forwards of the same weights; a letter's
// log-likelihood is one log-softmax entry, a continuation's a sum over its tokens (observed on the first
// reference run: 7e-5 and 1.5e-4 at most).
constexpr double kLetterTol = 5e-4, kContinuationTol = 2e-3;

struct Setup {
  test::TempDir dir;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Tokenizer> tok;
  nlohmann::json ref;
  Setup() {
    ConvertOptions co;
    co.model_dir = test::model_dir("tiny-code");
    co.output_dir = dir / "ckpt";
    co.dtype = DType::F32;
    co.progress = false;
    convert_checkpoint(co);  // RoPE frequencies in float32, as a fresh from_pretrained computes them
    BuildOptions bo;
    bo.checkpoint_dir = co.output_dir;
    bo.output_dir = dir / "engine";
    bo.limits.max_batch_size = 8;
    bo.limits.max_seq_len = 2048;
    bo.target = "cpu";
    bo.plan = target_planner("cpu");
    build_engine(bo);
    engine = Engine::load(bo.output_dir, 2);
    tok = Tokenizer::load(bo.output_dir);
    ref = read_json_file(test::source_dir() + "/tests/data/eval/mmlu_reference.json");
  }
};

Setup& setup() {
  static Setup s;
  return s;
}

// Runs `method` on `subjects` and checks every question against the reference's `key` entry.
void check(MmluMethod method, ClozeFormat format, const std::vector<std::string>& subjects, const char* key,
           double tol) {
  Setup& s = setup();
  ASSERT_EQ(s.ref["ntrain"], 5);
  ASSERT_EQ(s.ref["max_input_len"], 2048);
  const MmluData data = load_mmlu(test::source_dir() + kData, subjects);
  MmluRunOptions o;
  o.method = method;
  o.format = format;
  o.ntrain = 5;
  o.max_input_len = 2048;
  ExecutorConfig cfg;
  cfg.num_threads = 2;
  Executor ex(*s.engine, cfg);
  const auto answers = run_mmlu(ex, *s.tok, data, o);
  double worst = 0;
  int questions = 0, wrong = 0;
  for (size_t si = 0; si < data.subjects.size(); ++si) {
    const auto& want_list = s.ref["subjects"][data.subjects[si].name]["questions"];
    ASSERT_EQ(want_list.size(), answers[si].size()) << data.subjects[si].name;
    for (size_t q = 0; q < answers[si].size(); ++q) {
      const auto& want = want_list[q][key];
      const MmluAnswer& got = answers[si][q];
      const std::string where = data.subjects[si].name + " question " + std::to_string(q);
      EXPECT_EQ(got.k, want["k"].get<int>()) << where;
      EXPECT_EQ(got.prompt_tokens, want["prompt_tokens"].get<int64_t>()) << where;
      const std::string choice(1, char('A' + got.choice));
      if (choice != want["choice"].get<std::string>() && ++wrong <= 10)
        ADD_FAILURE() << where << ": kiln chose " << choice << ", transformers " << want["choice"];
      for (size_t c = 0; c < 4; ++c) {
        const double d = std::abs(got.scores[c] - want["loglikelihoods"][c].get<double>());
        worst = std::max(worst, d);
        EXPECT_LE(d, tol) << where << " choice " << c << ": kiln " << got.scores[c] << ", transformers "
                          << want["loglikelihoods"][c];
      }
      ++questions;
    }
  }
  EXPECT_EQ(wrong, 0) << "of " << questions;
  std::printf("%s: %d of %d choices as transformers'; largest log-likelihood difference %.3g\n", key, questions - wrong,
              questions, worst);
}

TEST(MmluAgreement, LetterLogLikelihoodChoicesEqualTransformersOnEveryQuestion) {
  check(MmluMethod::LogLikelihood, ClozeFormat::QA, {}, "loglikelihood", kLetterTol);
}

// Two subjects (30 questions) for the qa format: its longer prompts make it the slowest of the three.
TEST(MmluAgreement, QaContinuationChoicesEqualTransformers) {
  check(MmluMethod::Continuation, ClozeFormat::QA, {"python_http", "python_text"}, "continuation_qa", kContinuationTol);
}

TEST(MmluAgreement, PlainContinuationChoicesEqualTransformersOnEveryQuestion) {
  check(MmluMethod::Continuation, ClozeFormat::Plain, {}, "continuation_plain", kContinuationTol);
}

}  // namespace
}  // namespace kiln::eval
