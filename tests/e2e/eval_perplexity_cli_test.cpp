// kiln eval perplexity against this test's own computation: lm-eval's rolling windows cut here from the token list
// kiln tokenize gives, each window's logits from kiln run --logits-out, log-softmax in double; word and byte counts
// in closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "common/test_util.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace kiln::test {
namespace {

TEST(EvalPerplexityCli, MatchesItsDefinitionOnTinyCode) {
  TempDir tmp;
  auto r = run_kiln("convert --model " + model_dir("tiny-code") + " --output " + (tmp / "ck"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "e") + " --max-seq-len 64");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string text = "def area(r):\n    return 3.14159 * r * r\n\n\nclass Point:\n    def __init__(self, x, y):\n"
                           "        self.x = x\n        self.y = y\n";
  std::ofstream(tmp / "doc.txt") << text;
  r = run_kiln("eval perplexity --engine " + (tmp / "e") + " --dataset " + (tmp / "doc.txt") +
               " --max-length 16 --no-progress --json-out " + (tmp / "ppl.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto got = read_json_file(tmp / "ppl.json");

  r = run_kiln("tokenize --tokenizer " + (tmp / "e") + " --no-special-tokens --text '" + text + "'");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto ids = nlohmann::json::parse(r.out)["ids"].get<std::vector<int32_t>>();
  const int64_t n = int64_t(ids.size()), L = 16;
  ASSERT_GT(n, 2 * L) << "several windows, the last one partial";
  // Windows: [BOS] + t[:L-1] -> t[:L]; then the L tokens before each next block's last token -> that block.
  struct Win {
    std::vector<int32_t> in;
    int64_t pred;
    int32_t last;
  };
  std::vector<Win> wins{{{0}, L, ids[L - 1]}};
  wins[0].in.insert(wins[0].in.end(), ids.begin(), ids.begin() + L - 1);
  for (int64_t done = L; done < n; done += L) {
    const int64_t end = std::min(n, done + L);
    wins.push_back({std::vector<int32_t>(ids.begin() + (end - L - 1), ids.begin() + (end - 1)), end - done, ids[end - 1]});
  }
  double nll = 0;
  int64_t scored = 0;
  for (auto& w : wins) {
    r = run_kiln("run --engine " + (tmp / "e") + " --input-ids " + join_ids(w.in.data(), w.in.size()) +
                 " --max-new-tokens 1 --logits-out " + (tmp / "l.safetensors"));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    SafetensorsFile lf(tmp / "l.safetensors");
    const TensorView& ctx = lf.get("context_logits");  // [len, V]
    const int64_t T = ctx.shape[0], V = ctx.shape[1];
    const float* lg = static_cast<const float*>(ctx.data);
    for (int64_t j = T - w.pred; j < T; ++j) {
      const int32_t target = j + 1 < T ? w.in[size_t(j + 1)] : w.last;
      double mx = -INFINITY, z = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(lg[j * V + v]));
      for (int64_t v = 0; v < V; ++v) z += std::exp(double(lg[j * V + v]) - mx);
      nll -= double(lg[j * V + target]) - mx - std::log(z);
      ++scored;
    }
  }
  EXPECT_EQ(scored, n) << "every token predicted once";
  EXPECT_EQ(got["tokens"], n);
  EXPECT_EQ(got["windows"], wins.size());
  EXPECT_EQ(got["words"], 21) << "Python's len(re.split(r'\\s+', text))";
  EXPECT_EQ(got["bytes"], text.size());
  EXPECT_NEAR(got["nll"].get<double>(), nll, 1e-9 * nll);
  EXPECT_NEAR(got["token_perplexity"].get<double>(), std::exp(nll / double(n)), 1e-9);
  EXPECT_NEAR(got["word_perplexity"].get<double>(), std::exp(nll / 21.0), 1e-6);
  EXPECT_NEAR(got["bits_per_byte"].get<double>(), nll / (double(text.size()) * std::log(2.0)), 1e-12);
}

TEST(EvalPerplexityCli, BadInputs) {
  TempDir tmp;
  auto r = run_kiln("eval perplexity --engine " + (tmp / "none") + " --dataset " + (tmp / "x.txt"));
  EXPECT_EQ(r.out, "error: --dataset " + (tmp / "x.txt") + ": no such file\n");
  r = run_kiln("eval");
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace kiln::test
