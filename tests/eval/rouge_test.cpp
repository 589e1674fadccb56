// ROUGE: cases worked out by hand from the definitions (rouge.h).
#include "eval/rouge.h"

#include <gtest/gtest.h>

namespace kiln::eval {
namespace {

void expect_f(const RougeScores& s, double r1, double r2, double rl, double rlsum) {
  EXPECT_NEAR(s[kRouge1].fmeasure, r1, 1e-12);
  EXPECT_NEAR(s[kRouge2].fmeasure, r2, 1e-12);
  EXPECT_NEAR(s[kRougeL].fmeasure, rl, 1e-12);
  EXPECT_NEAR(s[kRougeLsum].fmeasure, rlsum, 1e-12);
}

TEST(Rouge, HandWorkedOverlap) {
  // unigrams: the x2, cat, on, mat = 5 of 6 each side; bigrams: "the cat", "on the", "the mat" = 3 of 5;
  // LCS "the cat on the mat" = 5.
  const RougeScores s = rouge("the cat sat on the mat", "the cat is on the mat");
  expect_f(s, 5.0 / 6, 3.0 / 5, 5.0 / 6, 5.0 / 6);
  EXPECT_NEAR(s[kRouge2].precision, 0.6, 1e-12);
  EXPECT_NEAR(s[kRouge2].recall, 0.6, 1e-12);
}

TEST(Rouge, StemsWordsLongerThanThreeLetters) {
  // [run, dog] against [the, dog, run]: unigram P 1, R 2/3 -> F 0.8; no common bigram; LCS 1: P 1/2, R 1/3 -> 0.4.
  expect_f(rouge("Running dogs", "the dog runs"), 0.8, 0.0, 0.4, 0.4);
}

TEST(Rouge, UnigramCountsAreClipped) {
  const RougeScores s = rouge("the the the", "the");
  EXPECT_NEAR(s[kRouge1].precision, 1.0 / 3, 1e-12);
  EXPECT_NEAR(s[kRouge1].recall, 1.0, 1e-12);
  EXPECT_NEAR(s[kRouge1].fmeasure, 0.5, 1e-12);
}

TEST(Rouge, LsumMatchesSentencesInAnyOrder) {
  // As one sequence the LCS of [a b c d] and [c d a b] is 2 (F 0.5); per sentence every token is found (F 1).
  expect_f(rouge("a b\nc d", "c d\na b"), 1.0, 2.0 / 3, 0.5, 1.0);
}

TEST(Rouge, LsumCountsEachTokenOnceWhileBothSidesHaveIt) {
  // Reference [[a]]; prediction [[a, a], [a]]: the union for the one reference token is {0}: one hit; P 1/3, R 1.
  const RougeScores s = rouge("a a\na", "a");
  EXPECT_NEAR(s[kRougeLsum].precision, 1.0 / 3, 1e-12);
  EXPECT_NEAR(s[kRougeLsum].recall, 1.0, 1e-12);
}

TEST(Rouge, EmptyAndPunctuationOnlyTextsScoreZero) {
  expect_f(rouge("", "something here"), 0, 0, 0, 0);
  expect_f(rouge("something here", ""), 0, 0, 0, 0);
  expect_f(rouge("", ""), 0, 0, 0, 0);
  expect_f(rouge("...!", "?!"), 0, 0, 0, 0);
}

TEST(Rouge, TokenizerLowercasesAsPythonAndSplitsOnEverythingElse) {
  // U+0130 lower-cases to "i" + U+0307 (a separator); U+212A (Kelvin sign) to "k"; other non-ASCII separates.
  EXPECT_EQ(rouge_tokenize("\xC4\xB0stanbul 5\xE2\x84\xAA caf\xC3\xA9 A-B_c3"),
            (std::vector<std::string>{"i", "stanbul", "5k", "caf", "a", "b", "c3"}));
  EXPECT_EQ(rouge_tokenize("Don't STOP"), (std::vector<std::string>{"don", "t", "stop"}));
  EXPECT_TRUE(rouge_tokenize(" \n\t ").empty());
}

TEST(Rouge, SentencesSplitAtNewlinesDroppingEmptyPieces) {
  EXPECT_EQ(rouge_sentences("a\n\nb \n"), (std::vector<std::string_view>{"a", "b "}));
  EXPECT_TRUE(rouge_sentences("").empty());
  EXPECT_EQ(rouge_sentences(" "), (std::vector<std::string_view>{" "}));
}

}  // namespace
}  // namespace kiln::eval
