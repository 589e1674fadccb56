// kiln's ROUGE against torchmetrics (which follows Google's rouge-score) on the 245 pairs of
// tests/data/eval/rouge_pairs.jsonl: tests/data/eval/rouge_reference.json, written on the GPU machine (H100 run of
// 2026-12-06 04:43 UTC; torchmetrics 1.9.0, torch 2.11) by scripts/dev/make_rouge_reference.py. There NLTK is absent,
// so torchmetrics tokenized the stemmed case with NLTK's stems from tests/data/eval/porter_reference.tsv and
// computed everything else itself (n-grams, LCS, the union LCS of ROUGE-Lsum, split at newlines as rouge-score
// does); the unstemmed case is torchmetrics alone. Every precision, recall and F of every pair must agree to 1e-6
// (torchmetrics' float32 values against kiln's doubles), and the stemmed tokens must be the same.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/test_util.h"
#include "eval/rouge.h"
#include "io/json_file.h"

namespace kiln::eval {
namespace {

struct Pair {
  std::string prediction, reference;
};

std::vector<Pair> read_pairs() {
  std::ifstream f(test::source_dir() + "/tests/data/eval/rouge_pairs.jsonl");
  std::vector<Pair> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("id").get<size_t>(), out.size());
    out.push_back({j.at("prediction").get<std::string>(), j.at("reference").get<std::string>()});
  }
  return out;
}

TEST(RougeAgreement, EveryPairMatchesTorchmetricsStemmedAndUnstemmed) {
  const auto pairs = read_pairs();
  const auto ref = read_json_file(test::source_dir() + "/tests/data/eval/rouge_reference.json");
  const auto& rp = ref.at("pairs");
  ASSERT_EQ(pairs.size(), rp.size());
  ASSERT_GE(pairs.size(), 200u);
  double worst = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    SCOPED_TRACE("pair " + std::to_string(i));
    EXPECT_EQ(rouge_tokenize(pairs[i].prediction), rp[i].at("pred_tokens").get<std::vector<std::string>>());
    EXPECT_EQ(rouge_tokenize(pairs[i].reference), rp[i].at("ref_tokens").get<std::vector<std::string>>());
    for (bool stem : {true, false}) {
      const RougeScores s = rouge(pairs[i].prediction, pairs[i].reference, stem);
      const auto& r = rp[i].at(stem ? "stemmed" : "unstemmed");
      for (int k = 0; k < kNumRougeKeys; ++k) {
        const auto& rk = r.at(rouge_key_name(RougeKey(k)));
        const double got[3] = {s[k].precision, s[k].recall, s[k].fmeasure};
        const char* what[3] = {"precision", "recall", "fmeasure"};
        for (int m = 0; m < 3; ++m) {
          const double want = rk.at(what[m]).get<double>();
          worst = std::max(worst, std::abs(got[m] - want));
          EXPECT_NEAR(got[m], want, 1e-6) << rouge_key_name(RougeKey(k)) << " " << what[m]
                                           << (stem ? " (stemmed)" : " (unstemmed)");
        }
      }
    }
  }
  std::printf("largest difference from torchmetrics over %zu pairs: %.3g\n", pairs.size(), worst);
}

// The corpus means (what kiln eval summarize reports, x 100) equal the means of torchmetrics' per-pair figures.
TEST(RougeAgreement, MeansMatchTorchmetrics) {
  const auto pairs = read_pairs();
  const auto ref = read_json_file(test::source_dir() + "/tests/data/eval/rouge_reference.json");
  for (bool stem : {true, false}) {
    RougeSummary sum;
    for (const Pair& p : pairs) sum.add(rouge(p.prediction, p.reference, stem));
    const RougeScores m = sum.finish();
    const auto& r = ref.at("mean_f64").at(stem ? "stemmed" : "unstemmed");
    for (int k = 0; k < kNumRougeKeys; ++k) {
      const auto& rk = r.at(rouge_key_name(RougeKey(k)));
      EXPECT_NEAR(m[k].precision, rk.at("precision").get<double>(), 1e-6);
      EXPECT_NEAR(m[k].recall, rk.at("recall").get<double>(), 1e-6);
      EXPECT_NEAR(m[k].fmeasure, rk.at("fmeasure").get<double>(), 1e-6);
    }
  }
}

}  // namespace
}  // namespace kiln::eval
