// The Porter stemmer (M.F. Porter, "An algorithm for suffix stripping", 1980) with the departures of NLTK's
// PorterStemmer in its default mode (NLTK_EXTENSIONS), which Google's rouge-score uses for ROUGE with stemming:
//   - irregular forms map to fixed stems first (skies/sky -> sky, dying -> die, lying -> lie, tying -> tie,
//     news -> news, innings/inning -> inning, outings/outing -> outing, cannings/canning -> canning, howe,
//     proceed, exceed, succeed);
//   - words of one or two letters are returned as they are;
//   - step 1a: a four-letter word in "ies" ends in "ie" (ties -> tie);
//   - step 1b: "ied" -> "ie" in a four-letter word, else "i"; a lone vowel-consonant pair (m = 0, length 2)
//     counts as *o for the final "e";
//   - step 1c: y -> i only after a consonant that is not the first letter;
//   - step 2: "alli" -> "al" is applied first and step 2 repeated on the result; "bli" -> "ble" (not
//     "abli" -> "able"); "fulli" -> "ful"; "logi" -> "log" when the stem with its "l" has m > 0.
// Input: lower-case ASCII letters and digits (what the ROUGE tokenizer produces); digits count as consonants.
#pragma once
#include <string>
#include <string_view>

namespace kiln::eval {

std::string porter_stem(std::string_view word);

}  // namespace kiln::eval
