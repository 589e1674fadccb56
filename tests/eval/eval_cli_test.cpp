// kiln eval summarize, mmlu and compare from the command line on the demo model (tiny-code, a cpu engine): the
// reports, --compare-with, thresholds, and bad inputs (one `error:` line each, exit 1).
#include <gtest/gtest.h>

#include <fstream>

#include "common/test_util.h"
#include "eval/rouge.h"
#include "eval/sha256.h"
#include "io/json_file.h"

namespace kiln::eval {
namespace {

using test::run_kiln;

struct Fixture {
  test::TempDir dir;
  std::string engine, dataset;
  Fixture() {
    engine = dir / "engine";
    EXPECT_EQ(run_kiln("convert --model " + test::model_dir("tiny-code") + " --output " + (dir / "ckpt")).exit_code, 0);
    auto b = run_kiln("build --checkpoint " + (dir / "ckpt") + " --output " + engine +
                      " --target cpu --max-batch-size 8 --max-seq-len 2048");
    EXPECT_EQ(b.exit_code, 0) << b.out;
    dataset = dir / "code.jsonl";
    std::ofstream f(dataset);
    const char* records[][2] = {
        {"def add(a, b):\n    return a + b\n", "add returns the sum of a and b"},
        {"import os\n\ndef list_files(path):\n", "list the files in a directory"},
        {"class Stack:\n    def __init__(self):\n        self.items = []\n", "a stack with a list of items"},
        {"for i in range(10):\n    print(i)\n", "print the numbers from 0 to 9"},
        {"with open(name) as f:\n    data = f.read()\n", "read the whole file into data"},
        {"try:\n    import json\nexcept ImportError:\n", "import json when it is there"},
    };
    for (auto& r : records) f << nlohmann::json{{"code", r[0]}, {"summary", r[1]}}.dump() << "\n";
  }
};

const Fixture& fx() {
  static Fixture f;
  return f;
}

std::string summarize_cmd(const std::string& extra) {
  return "eval summarize --engine " + fx().engine + " --dataset " + fx().dataset +
         " --input-field code --reference-field summary --output-len 16 --threads 2 " + extra;
}

TEST(EvalCli, SummarizeReportsRougeOfItsPredictionsAndTheDataset) {
  test::TempDir t;
  auto r = run_kiln(summarize_cmd("--json-out " + (t / "r.json")));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("ROUGE F-measure x 100 over 6 records"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("summarize: 6/6"), std::string::npos) << r.out;  // progress (not a terminal: lines)
  const auto j = read_json_file(t / "r.json");
  EXPECT_EQ(j["eval"], "summarize");
  EXPECT_NE(j["command"].get<std::string>().find("eval summarize --engine"), std::string::npos);
  EXPECT_EQ(j["engine"]["config"]["target"], "cpu");
  EXPECT_EQ(j["dataset"]["sha256"], sha256_file(fx().dataset));
  EXPECT_EQ(j["dataset"]["records"], 6);
  ASSERT_EQ(j["predictions"].size(), 6u);
  // The figures are the ROUGE of the predictions it reports against the dataset's references.
  std::ifstream f(fx().dataset);
  RougeSummary sum;
  std::string line;
  for (size_t i = 0; std::getline(f, line); ++i)
    sum.add(rouge(j["predictions"][i].get<std::string>(), parse_json(line)["summary"].get<std::string>()));
  for (int k = 0; k < kNumRougeKeys; ++k)
    EXPECT_DOUBLE_EQ(j["figures"][rouge_key_name(RougeKey(k))].get<double>(), 100 * sum.finish()[k].fmeasure);
  // Each prediction is what `kiln run` generates from the same prompt, alone (the batch does not change it).
  std::ofstream req(t / "req.jsonl");
  std::ifstream f2(fx().dataset);
  while (std::getline(f2, line))
    req << nlohmann::json{{"prompt", parse_json(line)["code"].get<std::string>() + " TL;DR: "}, {"max_new_tokens", 16}}
               .dump()
        << "\n";
  req.close();
  auto run = run_kiln("run --engine " + fx().engine + " --input-file " + (t / "req.jsonl") + " --output-file " +
                      (t / "out.jsonl") + " --threads 2");
  ASSERT_EQ(run.exit_code, 0) << run.out;
  std::ifstream out(t / "out.jsonl");
  for (size_t i = 0; std::getline(out, line); ++i) {
    std::string text = parse_json(line)["text"];
    const size_t b = text.find_first_not_of(" \t\r\n"), e = text.find_last_not_of(" \t\r\n");
    EXPECT_EQ(j["predictions"][i], b == std::string::npos ? "" : text.substr(b, e - b + 1)) << "record " << i;
  }
}

TEST(EvalCli, SummarizeComparesWithAnEngineOrSavedPredictions) {
  test::TempDir t;
  auto r = run_kiln(summarize_cmd("--compare-with " + fx().engine + " --json-out " + (t / "r.json")));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("+0.0000"), std::string::npos) << r.out;
  const auto j = read_json_file(t / "r.json");
  EXPECT_EQ(j["compare_with"]["figures"], j["figures"]);  // the same engine: the same summaries
  // An earlier report's predictions.
  r = run_kiln(summarize_cmd("--compare-with " + (t / "r.json") + " --json-out " + (t / "r1.json")));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(read_json_file(t / "r1.json")["compare_with"]["figures"], j["figures"]);
  // Saved predictions: the first two replaced by the references themselves, which must score higher.
  std::ofstream p(t / "p.jsonl");
  std::ifstream f(fx().dataset);
  std::string line;
  for (size_t i = 0; std::getline(f, line); ++i)
    p << nlohmann::json{{"prediction", i < 2 ? parse_json(line)["summary"] : j["predictions"][i]}}.dump() << "\n";
  p.close();
  r = run_kiln(summarize_cmd("--compare-with " + (t / "p.jsonl") + " --json-out " + (t / "r2.json")));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j2 = read_json_file(t / "r2.json");
  EXPECT_GT(j2["compare_with"]["figures"]["rouge1"].get<double>(), j2["figures"]["rouge1"].get<double>());
}

TEST(EvalCli, RougeThresholdSetsTheExitCode) {
  test::TempDir t;
  auto r = run_kiln(summarize_cmd("--json-out " + (t / "r.json")));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const double r1 = read_json_file(t / "r.json")["figures"]["rouge1"];
  EXPECT_EQ(run_kiln(summarize_cmd("--rouge1-threshold " + std::to_string(r1 - 0.01))).exit_code, 0);
  r = run_kiln(summarize_cmd("--rouge1-threshold " + std::to_string(r1 + 0.01)));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("error: rouge1 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" is below --rouge1-threshold "), std::string::npos) << r.out;
}

// The last line of the output, which must be the only `error:` line.
void expect_one_error(const test::CmdResult& r, const std::string& msg) {
  EXPECT_EQ(r.exit_code, 1) << r.out;
  size_t n = 0;
  for (size_t p = r.out.find("error: "); p != std::string::npos; p = r.out.find("error: ", p + 1)) ++n;
  EXPECT_EQ(n, 1u) << r.out;
  EXPECT_NE(r.out.find("error: " + msg), std::string::npos) << r.out;
}

TEST(EvalCli, BadInputsAreOneClearError) {
  test::TempDir t;
  std::ofstream(t / "empty.jsonl") << "\n";
  expect_one_error(run_kiln("eval summarize --engine " + fx().engine + " --dataset " + (t / "empty.jsonl")),
                   "--dataset " + (t / "empty.jsonl") + ": no records (an empty dataset)");
  expect_one_error(run_kiln("eval summarize --engine " + fx().engine + " --dataset " + fx().dataset),
                   fx().dataset + ":1: no field \"article\" (set the field's name with --input-field)");
  expect_one_error(run_kiln("eval mmlu --engine " + fx().engine + " --data-dir " + test::source_dir() +
                            "/tests/data/eval/code_mmlu --subjects anatomy"),
                   "--subjects: unknown subject 'anatomy'");
  expect_one_error(run_kiln("eval mmlu --engine " + fx().engine + " --data-dir " + test::source_dir() +
                            "/tests/data/eval/code_mmlu --method guess"),
                   "--method 'guess': expected generate, loglikelihood or continuation");
  expect_one_error(run_kiln("eval summarize --engine " + (t / "nowhere") + " --dataset " + fx().dataset +
                            " --input-field code --reference-field summary"),
                   "--engine " + (t / "nowhere") + ": no tokenizer.json");
  expect_one_error(run_kiln("eval compare " + fx().dataset), "kiln eval compare: give at least two reports");
}

TEST(EvalCli, MmluGenerateAndCompareReports) {
  test::TempDir t;
  const std::string base = "eval mmlu --engine " + fx().engine + " --data-dir " + test::source_dir() +
                           "/tests/data/eval/code_mmlu --subjects python_text --threads 2 ";
  auto g = run_kiln(base + "--method generate --json-out " + (t / "g.json"));
  ASSERT_EQ(g.exit_code, 0) << g.out;
  EXPECT_NE(g.out.find("weighted accuracy"), std::string::npos) << g.out;
  // Above any accuracy: exit 1 after the table and the report are written.
  auto l = run_kiln(base + "--method loglikelihood --accuracy-threshold 100.5 --json-out " + (t / "l.json"));
  EXPECT_EQ(l.exit_code, 1) << l.out;
  EXPECT_NE(l.out.find("is below --accuracy-threshold 100.5"), std::string::npos) << l.out;
  EXPECT_LT(l.out.find("weighted accuracy"), l.out.find("error: accuracy")) << l.out;
  const auto gj = read_json_file(t / "g.json"), lj = read_json_file(t / "l.json");
  EXPECT_EQ(gj["dataset"]["sha256"], lj["dataset"]["sha256"]);
  ASSERT_EQ(lj["questions"]["python_text"].size(), 15u);
  EXPECT_EQ(lj["questions"]["python_text"][0]["loglikelihoods"].size(), 4u);
  EXPECT_TRUE(gj["questions"]["python_text"][0].contains("output"));
  const double acc_g = gj["figures"]["accuracy"], acc_l = lj["figures"]["accuracy"];
  EXPECT_DOUBLE_EQ(lj["figures"]["subject/python_text"].get<double>(), acc_l);
  EXPECT_DOUBLE_EQ(lj["figures"]["category/text formats"].get<double>(), acc_l);
  // compare: l against g passes when l is not below g by more than the tolerance, and the other way round.
  const double drop = acc_g - acc_l;
  auto c = run_kiln("eval compare " + (t / "g.json") + " " + (t / "l.json") + " --tolerance " +
                    std::to_string(std::max(0.0, drop) + 0.5));
  EXPECT_EQ(c.exit_code, 0) << c.out;
  EXPECT_NE(c.out.find("pass: every figure within its tolerance"), std::string::npos) << c.out;
  if (acc_g != acc_l) {
    const std::string lower = acc_l < acc_g ? t / "l.json" : t / "g.json",
                      higher = acc_l < acc_g ? t / "g.json" : t / "l.json";
    c = run_kiln("eval compare " + higher + " " + lower + " --tolerance 0");
    EXPECT_EQ(c.exit_code, 1) << c.out;
    EXPECT_NE(c.out.find("FAIL"), std::string::npos) << c.out;
  }
}

}  // namespace
}  // namespace kiln::eval
