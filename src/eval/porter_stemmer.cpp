// Porter's five steps over a std::string, each rule list tried in order: the first rule whose suffix the word
// ends with decides (its condition holds: replace; it fails: the word is left as it is).
#include "eval/porter_stemmer.h"

#include <array>
#include <functional>
#include <utility>

namespace kiln::eval {
namespace {

bool is_vowel_letter(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// A consonant is a letter other than a, e, i, o, u, and other than y after a consonant.
bool is_consonant(std::string_view w, size_t i) {
  if (is_vowel_letter(w[i])) return false;
  if (w[i] == 'y') return i == 0 || !is_consonant(w, i - 1);
  return true;
}

// m in [C](VC)^m[V]: the number of vowel-to-consonant transitions.
int measure(std::string_view w) {
  int m = 0;
  for (size_t i = 1; i < w.size(); ++i)
    if (!is_consonant(w, i - 1) && is_consonant(w, i)) ++m;
  return m;
}

bool contains_vowel(std::string_view w) {
  for (size_t i = 0; i < w.size(); ++i)
    if (!is_consonant(w, i)) return true;
  return false;
}

bool ends_double_consonant(std::string_view w) {
  const size_t n = w.size();
  return n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1);
}

// *o: consonant-vowel-consonant at the end, the last not w, x or y; or (NLTK) a two-letter vowel-consonant word.
bool ends_cvc(std::string_view w) {
  const size_t n = w.size();
  if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) && w[n - 1] != 'w' &&
      w[n - 1] != 'x' && w[n - 1] != 'y')
    return true;
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

bool ends_with(std::string_view w, std::string_view s) {
  return w.size() >= s.size() && w.substr(w.size() - s.size()) == s;
}

std::string_view strip(std::string_view w, std::string_view suffix) { return w.substr(0, w.size() - suffix.size()); }

using Cond = std::function<bool(std::string_view stem)>;
struct Rule {
  std::string_view suffix, replacement;
  Cond cond;  // empty: always
};

template <size_t N>
std::string apply_rules(std::string_view w, const std::array<Rule, N>& rules) {
  for (const Rule& r : rules) {
    if (!ends_with(w, r.suffix)) continue;
    const std::string_view stem = strip(w, r.suffix);
    if (!r.cond || r.cond(stem)) return std::string(stem) + std::string(r.replacement);
    return std::string(w);
  }
  return std::string(w);
}

bool m_positive(std::string_view s) { return measure(s) > 0; }
bool m_above_one(std::string_view s) { return measure(s) > 1; }

std::string step1a(std::string_view w) {
  if (w.size() == 4 && ends_with(w, "ies")) return std::string(strip(w, "ies")) + "ie";
  static const std::array<Rule, 4> rules{{{"sses", "ss", {}}, {"ies", "i", {}}, {"ss", "ss", {}}, {"s", "", {}}}};
  return apply_rules(w, rules);
}

std::string step1b(std::string_view w) {
  if (ends_with(w, "ied")) return std::string(strip(w, "ied")) + (w.size() == 4 ? "ie" : "i");
  if (ends_with(w, "eed")) {
    const std::string_view stem = strip(w, "eed");
    return measure(stem) > 0 ? std::string(stem) + "ee" : std::string(w);
  }
  std::string_view stem;
  bool removed = false;
  for (std::string_view suffix : {std::string_view("ed"), std::string_view("ing")}) {
    if (ends_with(w, suffix) && contains_vowel(strip(w, suffix))) {
      stem = strip(w, suffix);
      removed = true;
      break;
    }
  }
  if (!removed) return std::string(w);
  if (ends_with(stem, "at")) return std::string(stem) + "e";
  if (ends_with(stem, "bl")) return std::string(stem) + "e";
  if (ends_with(stem, "iz")) return std::string(stem) + "e";
  if (ends_double_consonant(stem)) {
    const char last = stem.back();
    if (last == 'l' || last == 's' || last == 'z') return std::string(stem);
    return std::string(stem.substr(0, stem.size() - 1));
  }
  if (measure(stem) == 1 && ends_cvc(stem)) return std::string(stem) + "e";
  return std::string(stem);
}

std::string step1c(std::string_view w) {
  if (ends_with(w, "y") && w.size() >= 3 && is_consonant(w, w.size() - 2)) return std::string(strip(w, "y")) + "i";
  return std::string(w);
}

std::string step2(std::string_view w) {
  if (ends_with(w, "alli") && m_positive(strip(w, "alli"))) return step2(std::string(strip(w, "alli")) + "al");
  // "logi" -> "log": the condition is on the stem with its "l" (so geology -> geolog as archaeology does).
  const std::string word(w);
  const Cond logi = [word](std::string_view) { return m_positive(std::string_view(word).substr(0, word.size() - 3)); };
  const std::array<Rule, 22> rules{{
      {"ational", "ate", m_positive}, {"tional", "tion", m_positive}, {"enci", "ence", m_positive},
      {"anci", "ance", m_positive},   {"izer", "ize", m_positive},    {"bli", "ble", m_positive},
      {"alli", "al", m_positive},     {"entli", "ent", m_positive},   {"eli", "e", m_positive},
      {"ousli", "ous", m_positive},   {"ization", "ize", m_positive}, {"ation", "ate", m_positive},
      {"ator", "ate", m_positive},    {"alism", "al", m_positive},    {"iveness", "ive", m_positive},
      {"fulness", "ful", m_positive}, {"ousness", "ous", m_positive}, {"aliti", "al", m_positive},
      {"iviti", "ive", m_positive},   {"biliti", "ble", m_positive},  {"fulli", "ful", m_positive},
      {"logi", "log", logi},
  }};
  return apply_rules(w, rules);
}

std::string step3(std::string_view w) {
  static const std::array<Rule, 7> rules{{{"icate", "ic", m_positive},
                                          {"ative", "", m_positive},
                                          {"alize", "al", m_positive},
                                          {"iciti", "ic", m_positive},
                                          {"ical", "ic", m_positive},
                                          {"ful", "", m_positive},
                                          {"ness", "", m_positive}}};
  return apply_rules(w, rules);
}

std::string step4(std::string_view w) {
  const Cond ion = [](std::string_view s) { return m_above_one(s) && (s.back() == 's' || s.back() == 't'); };
  static const std::array<Rule, 19> rules{{
      {"al", "", m_above_one},    {"ance", "", m_above_one}, {"ence", "", m_above_one}, {"er", "", m_above_one},
      {"ic", "", m_above_one},    {"able", "", m_above_one}, {"ible", "", m_above_one}, {"ant", "", m_above_one},
      {"ement", "", m_above_one}, {"ment", "", m_above_one}, {"ent", "", m_above_one},  {"ion", "", ion},
      {"ou", "", m_above_one},    {"ism", "", m_above_one},  {"ate", "", m_above_one},  {"iti", "", m_above_one},
      {"ous", "", m_above_one},   {"ive", "", m_above_one},  {"ize", "", m_above_one},
  }};
  return apply_rules(w, rules);
}

std::string step5a(std::string_view w) {
  if (!ends_with(w, "e")) return std::string(w);
  const std::string_view stem = strip(w, "e");
  const int m = measure(stem);
  if (m > 1 || (m == 1 && !ends_cvc(stem))) return std::string(stem);
  return std::string(w);
}

std::string step5b(std::string_view w) {
  if (ends_with(w, "ll") && measure(w.substr(0, w.size() - 1)) > 1) return std::string(w.substr(0, w.size() - 1));
  return std::string(w);
}

// NLTK's irregular forms.
std::string_view irregular(std::string_view w) {
  static const std::array<std::pair<std::string_view, std::string_view>, 16> pool{{
      {"skies", "sky"},
      {"sky", "sky"},
      {"dying", "die"},
      {"lying", "lie"},
      {"tying", "tie"},
      {"news", "news"},
      {"innings", "inning"},
      {"inning", "inning"},
      {"outings", "outing"},
      {"outing", "outing"},
      {"cannings", "canning"},
      {"canning", "canning"},
      {"howe", "howe"},
      {"proceed", "proceed"},
      {"exceed", "exceed"},
      {"succeed", "succeed"},
  }};
  for (const auto& [form, stem] : pool)
    if (w == form) return stem;
  return {};
}

}  // namespace

std::string porter_stem(std::string_view word) {
  if (const std::string_view s = irregular(word); !s.empty()) return std::string(s);
  if (word.size() <= 2) return std::string(word);
  std::string w = step1a(word);
  w = step1b(w);
  w = step1c(w);
  w = step2(w);
  w = step3(w);
  w = step4(w);
  w = step5a(w);
  return step5b(w);
}

}  // namespace kiln::eval
