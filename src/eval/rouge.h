// ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum as Google's rouge-score computes them (the package behind Hugging Face
// `evaluate` and TensorRT-LLM's summarize.py), with Porter stemming on:
//   tokens: the text lower-cased as Python's str.lower() does, every run of characters other than a-z and 0-9
//     a separator, tokens longer than 3 characters stemmed (porter_stemmer.h);
//   ROUGE-N: clipped n-gram overlap; precision = overlap / prediction n-grams, recall = overlap / reference n-grams;
//   ROUGE-L: the longest common subsequence of the two token lists;
//   ROUGE-Lsum: summary-level LCS (Lin 2004, section 3.2) over sentences, split at "\n" (empty pieces dropped):
//     per reference sentence, the union of its LCS positions with every prediction sentence; each token of the
//     union counts once while both summaries still have that token left;
//   F = 2PR / (P + R) (0 when P + R = 0). Every figure is in [0, 1]; reports show them x 100.
#pragma once
#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::eval {

// stem = false: no stemming (rouge-score's use_stemmer=False).
std::vector<std::string> rouge_tokenize(std::string_view text, bool stem = true);
// The text's sentences for ROUGE-Lsum: split at '\n', empty pieces dropped (a piece of only spaces is kept).
std::vector<std::string_view> rouge_sentences(std::string_view text);

struct RougeScore {
  double precision = 0, recall = 0, fmeasure = 0;
};

enum RougeKey { kRouge1, kRouge2, kRougeL, kRougeLsum, kNumRougeKeys };
const char* rouge_key_name(RougeKey k);  // "rouge1", "rouge2", "rougeL", "rougeLsum"

using RougeScores = std::array<RougeScore, kNumRougeKeys>;

RougeScores rouge(std::string_view prediction, std::string_view reference, bool stem = true);

// Mean precision, recall and F over pairs (0 for none).
struct RougeSummary {
  RougeScores mean{};
  size_t count = 0;
  void add(const RougeScores& s);
  RougeScores finish() const;
};

}  // namespace kiln::eval
