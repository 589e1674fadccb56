// The Porter stemmer against NLTK's PorterStemmer (default mode, as rouge-score uses it): 6,626 words of the
// python3.11 stdlib and rule edge cases, stemmed by NLTK (scripts/dev/make_porter_reference.py).
#include "eval/porter_stemmer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "common/test_util.h"

namespace kiln::eval {
namespace {

TEST(PorterStemmer, MatchesNltkOnEveryWordOfTheReference) {
  std::ifstream f(test::source_dir() + "/tests/data/eval/porter_reference.tsv");
  ASSERT_TRUE(f) << "tests/data/eval/porter_reference.tsv";
  std::string line;
  int n = 0, wrong = 0;
  while (std::getline(f, line)) {
    const size_t tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    const std::string word = line.substr(0, tab), want = line.substr(tab + 1);
    const std::string got = porter_stem(word);
    if (got != want && ++wrong <= 20) ADD_FAILURE() << word << ": kiln " << got << ", nltk " << want;
    ++n;
  }
  EXPECT_GT(n, 6000);
  EXPECT_EQ(wrong, 0) << "of " << n;
}

// Porter's own examples (the 1980 paper), where NLTK's mode agrees with the published algorithm.
TEST(PorterStemmer, PaperExamples) {
  const std::pair<const char*, const char*> cases[] = {
      {"caresses", "caress"},   {"ponies", "poni"},       {"caress", "caress"},    {"cats", "cat"},
      {"agreed", "agre"},       {"plastered", "plaster"}, {"motoring", "motor"},   {"hopping", "hop"},
      {"falling", "fall"},      {"filing", "file"},       {"relational", "relat"}, {"generalizations", "gener"},
      {"oscillators", "oscil"}, {"sky", "sky"},           {"dying", "die"},        {"ties", "tie"},
  };
  for (const auto& [w, s] : cases) EXPECT_EQ(porter_stem(w), s) << w;
}

}  // namespace
}  // namespace kiln::eval
