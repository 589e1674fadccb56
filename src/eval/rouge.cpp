#include "eval/rouge.h"

#include <algorithm>
#include <map>
#include <set>

#include "eval/porter_stemmer.h"

namespace kiln::eval {
namespace {

// The one code point whose lower case (Python's str.lower, full case mapping) holds an ASCII letter besides
// A-Z: U+0130 (I with dot above) -> "i" + U+0307; and U+212A (Kelvin sign) -> "k". Every other non-ASCII code
// point lower-cases to non-ASCII, so it separates tokens.
constexpr char32_t kCapitalIDot = 0x130, kKelvin = 0x212A;

// Decodes one UTF-8 sequence at s[i] (advancing i); an invalid byte is one code point that is not a letter.
char32_t next_code_point(std::string_view s, size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return 0xFFFD;
  }
  char32_t cp = len == 1 ? b : b & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c >> 6) != 2) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  i += len;
  return cp;
}

std::vector<std::string> ngrams(const std::vector<std::string>& t, size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i + n <= t.size(); ++i) {
    std::string g = t[i];
    for (size_t k = 1; k < n; ++k) g += ' ' + t[i + k];  // tokens hold no space
    out.push_back(std::move(g));
  }
  return out;
}

RougeScore from_counts(double hits, double pred_total, double ref_total) {
  RougeScore s;
  if (pred_total == 0 || ref_total == 0) return s;
  s.precision = hits / pred_total;
  s.recall = hits / ref_total;
  s.fmeasure = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0;
  return s;
}

RougeScore rouge_n(const std::vector<std::string>& pred, const std::vector<std::string>& ref, size_t n) {
  std::map<std::string, int64_t> ref_counts, pred_counts;
  const auto rg = ngrams(ref, n), pg = ngrams(pred, n);
  for (const auto& g : rg) ++ref_counts[g];
  for (const auto& g : pg) ++pred_counts[g];
  int64_t hits = 0;
  for (const auto& [g, c] : ref_counts)
    if (auto it = pred_counts.find(g); it != pred_counts.end()) hits += std::min(c, it->second);
  return from_counts(double(hits), double(pg.size()), double(rg.size()));
}

// table[i][j]: LCS length of a[0..i) and b[0..j).
std::vector<std::vector<int32_t>> lcs_table(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::vector<int32_t>> t(a.size() + 1, std::vector<int32_t>(b.size() + 1, 0));
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j)
      t[i][j] = a[i - 1] == b[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
  return t;
}

// The positions in `ref` of one LCS of ref and cand: walking back from the end, a match is taken; otherwise the
// candidate steps back when that keeps a strictly longer LCS, else the reference does (rouge-score's choice).
std::vector<size_t> lcs_positions(const std::vector<std::string>& ref, const std::vector<std::string>& cand) {
  const auto t = lcs_table(ref, cand);
  std::vector<size_t> pos;
  size_t i = ref.size(), j = cand.size();
  while (i > 0 && j > 0) {
    if (ref[i - 1] == cand[j - 1]) {
      pos.push_back(i - 1);
      --i;
      --j;
    } else if (t[i][j - 1] > t[i - 1][j]) {
      --j;
    } else {
      --i;
    }
  }
  std::reverse(pos.begin(), pos.end());
  return pos;
}

RougeScore rouge_lsum(const std::vector<std::vector<std::string>>& pred,
                      const std::vector<std::vector<std::string>>& ref) {
  std::map<std::string, int64_t> pred_left, ref_left;
  size_t pred_total = 0, ref_total = 0;
  for (const auto& s : pred) {
    pred_total += s.size();
    for (const auto& t : s) ++pred_left[t];
  }
  for (const auto& s : ref) {
    ref_total += s.size();
    for (const auto& t : s) ++ref_left[t];
  }
  if (pred_total == 0 || ref_total == 0) return {};
  int64_t hits = 0;
  for (const auto& r : ref) {
    std::set<size_t> uni;
    for (const auto& c : pred)
      for (size_t p : lcs_positions(r, c)) uni.insert(p);
    for (size_t p : uni) {
      const std::string& tok = r[p];
      auto& pc = pred_left[tok];
      auto& rc = ref_left[tok];
      if (pc > 0 && rc > 0) {
        ++hits;
        --pc;
        --rc;
      }
    }
  }
  return from_counts(double(hits), double(pred_total), double(ref_total));
}

}  // namespace

std::vector<std::string> rouge_tokenize(std::string_view text, bool stem) {
  std::vector<std::string> tokens;
  std::string cur;
  auto flush = [&] {
    if (cur.empty()) return;
    tokens.push_back(stem && cur.size() > 3 ? porter_stem(cur) : cur);
    cur.clear();
  };
  for (size_t i = 0; i < text.size();) {
    const char32_t cp = next_code_point(text, i);
    char c = 0;
    if (cp >= 'a' && cp <= 'z')
      c = char(cp);
    else if (cp >= 'A' && cp <= 'Z')
      c = char(cp - 'A' + 'a');
    else if (cp >= '0' && cp <= '9')
      c = char(cp);
    else if (cp == kCapitalIDot)
      c = 'i';  // then U+0307, a separator
    else if (cp == kKelvin)
      c = 'k';
    if (c) {
      cur += c;
      if (cp == kCapitalIDot) flush();
    } else {
      flush();
    }
  }
  flush();
  return tokens;
}

std::vector<std::string_view> rouge_sentences(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    if (nl > start) out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

const char* rouge_key_name(RougeKey k) {
  static const char* names[] = {"rouge1", "rouge2", "rougeL", "rougeLsum"};
  return names[k];
}

RougeScores rouge(std::string_view prediction, std::string_view reference, bool stem) {
  const auto pred = rouge_tokenize(prediction, stem), ref = rouge_tokenize(reference, stem);
  RougeScores s;
  s[kRouge1] = rouge_n(pred, ref, 1);
  s[kRouge2] = rouge_n(pred, ref, 2);
  const auto t = lcs_table(ref, pred);
  s[kRougeL] = from_counts(double(t[ref.size()][pred.size()]), double(pred.size()), double(ref.size()));
  std::vector<std::vector<std::string>> ps, rs;
  for (std::string_view x : rouge_sentences(prediction)) ps.push_back(rouge_tokenize(x, stem));
  for (std::string_view x : rouge_sentences(reference)) rs.push_back(rouge_tokenize(x, stem));
  s[kRougeLsum] = rouge_lsum(ps, rs);
  return s;
}

void RougeSummary::add(const RougeScores& s) {
  for (int k = 0; k < kNumRougeKeys; ++k) {
    mean[k].precision += s[k].precision;
    mean[k].recall += s[k].recall;
    mean[k].fmeasure += s[k].fmeasure;
  }
  ++count;
}

RougeScores RougeSummary::finish() const {
  RougeScores out = mean;
  if (count == 0) return out;
  for (auto& s : out) {
    s.precision /= double(count);
    s.recall /= double(count);
    s.fmeasure /= double(count);
  }
  return out;
}

}  // namespace kiln::eval
