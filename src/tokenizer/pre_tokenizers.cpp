#include "tokenizer/pre_tokenizers.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "tokenizer/json_util.h"
#include "tokenizer/unicode.h"

namespace kiln::tok {

void split_piece(const Piece& p, const std::vector<Span>& matches, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out) {
  struct Seg {
    size_t s, e;
    bool m;
  };
  const std::string_view t = p.text;
  // Fast path: Isolated keeps every segment; no need to build the list.
  if (behavior == SplitBehavior::Isolated) {
    size_t prev = 0;
    for (const Span& m : matches) {
      if (m.start > prev) out.push_back({t.substr(prev, m.start - prev), p.at_origin && prev == 0});
      if (m.end > m.start) out.push_back({t.substr(m.start, m.end - m.start), p.at_origin && m.start == 0});
      prev = m.end;
    }
    if (prev < t.size()) out.push_back({t.substr(prev), p.at_origin && prev == 0});
    return;
  }
  std::vector<Seg> segs;
  segs.reserve(matches.size() * 2 + 1);
  if (t.empty()) {
    segs.push_back({0, 0, false});
  } else {
    size_t prev = 0;
    for (const Span& m : matches) {
      if (prev != m.start) segs.push_back({prev, m.start, false});
      segs.push_back({m.start, m.end, true});
      prev = m.end;
    }
    if (prev != t.size()) segs.push_back({prev, t.size(), false});
  }
  if (invert)
    for (Seg& s : segs) s.m = !s.m;
  // (start, end, remove)
  std::vector<Seg> parts;
  parts.reserve(segs.size());
  switch (behavior) {
    case SplitBehavior::Isolated:
      break;
    case SplitBehavior::Removed:
      parts = segs;
      break;
    case SplitBehavior::Contiguous: {
      bool prev_m = false;
      for (const Seg& s : segs) {
        if (s.m == prev_m && !parts.empty())
          parts.back().e = s.e;
        else
          parts.push_back({s.s, s.e, false});
        prev_m = s.m;
      }
      break;
    }
    case SplitBehavior::MergedWithPrevious: {
      bool prev_m = false;
      for (const Seg& s : segs) {
        if (s.m && !prev_m && !parts.empty())
          parts.back().e = s.e;
        else
          parts.push_back({s.s, s.e, false});
        prev_m = s.m;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool prev_m = false;
      for (size_t k = segs.size(); k-- > 0;) {
        const Seg& s = segs[k];
        if (s.m && !prev_m && !parts.empty())
          parts.back().s = s.s;
        else
          parts.push_back({s.s, s.e, false});
        prev_m = s.m;
      }
      std::reverse(parts.begin(), parts.end());
      break;
    }
  }
  for (const Seg& s : parts) {
    if (s.m || s.e <= s.s) continue;  // in `parts`, m means "remove"
    out.push_back({t.substr(s.s, s.e - s.s), p.at_origin && s.s == 0});
  }
}

namespace {

SplitBehavior parse_behavior(const nlohmann::json& j, const char* what) {
  std::string b = field<std::string>(j, "behavior", what);
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  fail("{} has unknown behavior '{}'", what, b);
}

// Spans of single characters for which pred holds.
template <typename Pred>
void char_matches(std::string_view s, Pred pred, std::vector<Span>& out) {
  for (size_t i = 0; i < s.size();) {
    size_t n;
    uint32_t cp = utf8_decode(s, i, n);
    if (pred(cp)) out.push_back({i, i + n});
    i += n;
  }
}

template <typename Pred>
class CharSplit : public PreTokenizer {
 public:
  CharSplit(Pred pred, SplitBehavior b) : pred_(pred), b_(b) {}
  void apply(std::vector<Piece>& pieces, PreTokScratch& s) const override {
    s.tmp.clear();
    for (const Piece& p : pieces) {
      s.spans.clear();
      char_matches(p.text, pred_, s.spans);
      split_piece(p, s.spans, b_, false, s.tmp);
    }
    pieces.swap(s.tmp);
  }

 private:
  Pred pred_;
  SplitBehavior b_;
};
template <typename Pred>
std::unique_ptr<PreTokenizer> char_split(Pred p, SplitBehavior b) {
  return std::make_unique<CharSplit<Pred>>(p, b);
}

class RegexSplit : public PreTokenizer {
 public:
  RegexSplit(const std::string& pattern, bool is_regex, SplitBehavior b, bool invert)
      : re_(pattern, !is_regex), b_(b), invert_(invert) {}
  void apply(std::vector<Piece>& pieces, PreTokScratch& s) const override {
    s.tmp.clear();
    for (const Piece& p : pieces) {
      s.spans.clear();
      re_.find_all(p.text, s.spans);
      split_piece(p, s.spans, b_, invert_, s.tmp);
    }
    pieces.swap(s.tmp);
  }

 private:
  Regex re_;
  SplitBehavior b_;
  bool invert_;
};

const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex, bool map_bytes)
      : add_prefix_space_(add_prefix_space), map_bytes_(map_bytes) {
    if (use_regex) re_ = std::make_unique<Regex>(kGpt2Pattern, false);
  }
  void apply(std::vector<Piece>& pieces, PreTokScratch& s) const override {
    s.tmp.clear();
    for (Piece p : pieces) {
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) {
        std::string t;
        t.reserve(p.text.size() + 1);
        t.push_back(' ');
        t.append(p.text);
        p.text = s.keep(std::move(t));
      }
      if (re_) {
        s.spans.clear();
        re_->find_all(p.text, s.spans);
        split_piece(p, s.spans, SplitBehavior::Isolated, false, s.tmp);
      } else if (!p.text.empty()) {
        s.tmp.push_back(p);
      }
    }
    pieces.swap(s.tmp);
    if (!map_bytes_) return;
    const auto& b2u = byte_to_unicode();
    for (Piece& p : pieces) {
      std::string m;
      m.reserve(p.text.size() * 2);
      for (unsigned char c : p.text) utf8_append(m, b2u[c]);
      p.text = s.keep(std::move(m));
    }
  }

 private:
  bool add_prefix_space_, map_bytes_;
  std::unique_ptr<Regex> re_;
};

class Metaspace : public PreTokenizer {
 public:
  enum class Scheme { Always, First, Never };
  Metaspace(uint32_t replacement, Scheme scheme, bool split) : scheme_(scheme), split_(split) {
    utf8_append(rep_, replacement);
  }
  void apply(std::vector<Piece>& pieces, PreTokScratch& s) const override {
    s.tmp.clear();
    for (Piece p : pieces) {
      std::string t;
      t.reserve(p.text.size() + rep_.size());
      for (char c : p.text) {
        if (c == ' ')
          t += rep_;
        else
          t += c;
      }
      bool starts = t.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (scheme_ == Scheme::Always || (scheme_ == Scheme::First && p.at_origin))) t.insert(0, rep_);
      Piece q{s.keep(std::move(t)), p.at_origin};
      if (split_) {
        s.spans.clear();
        const std::string_view v = q.text;
        for (size_t i = v.find(rep_); i != std::string_view::npos; i = v.find(rep_, i + rep_.size()))
          s.spans.push_back({i, i + rep_.size()});
        split_piece(q, s.spans, SplitBehavior::MergedWithNext, false, s.tmp);
      } else if (!q.text.empty()) {
        s.tmp.push_back(q);
      }
    }
    pieces.swap(s.tmp);
  }

 private:
  std::string rep_;
  Scheme scheme_;
  bool split_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> v) : v_(std::move(v)) {}
  void apply(std::vector<Piece>& pieces, PreTokScratch& s) const override {
    for (const auto& p : v_) p->apply(pieces, s);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> v_;
};

uint32_t single_char(const std::string& s, const char* what) {
  size_t n = 0;
  if (s.empty()) fail("{} must be one character, got an empty string", what);
  uint32_t cp = utf8_decode(s, 0, n);
  if (n != s.size()) fail("{} must be one character, got '{}'", what, s);
  return cp;
}

}  // namespace

bool ends_with_byte_level(const nlohmann::json& j) {
  if (!j.is_object()) return false;
  std::string t = j.value("type", "");
  if (t == "ByteLevel") return true;
  if (t == "Sequence") {
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array() || it->empty()) return false;
    for (size_t i = 0; i + 1 < it->size(); ++i)
      if (contains_byte_level((*it)[i])) return false;
    return ends_with_byte_level(it->back());
  }
  return false;
}

bool contains_byte_level(const nlohmann::json& j) {
  if (!j.is_object()) return false;
  std::string t = j.value("type", "");
  if (t == "ByteLevel") return true;
  if (t == "Sequence")
    if (auto it = j.find("pretokenizers"); it != j.end() && it->is_array())
      for (const auto& e : *it)
        if (contains_byte_level(e)) return true;
  return false;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const PreTokOptions& opt) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, "pre_tokenizer");
  if (t == "Split") {
    auto pat = j.find("pattern");
    if (pat == j.end()) fail("Split pre-tokenizer has no \"pattern\" field");
    bool is_regex = false;
    std::string p = read_pattern(*pat, "Split pre-tokenizer", is_regex);
    return std::make_unique<RegexSplit>(p, is_regex, parse_behavior(j, "Split pre-tokenizer"),
                                        field_or(j, "invert", false));
  }
  if (t == "ByteLevel")
    return std::make_unique<ByteLevel>(field_or(j, "add_prefix_space", true), field_or(j, "use_regex", true),
                                       !opt.byte_level_raw);
  if (t == "Metaspace") {
    uint32_t rep = single_char(field_or<std::string>(j, "replacement", "\u2581"), "Metaspace replacement");
    Metaspace::Scheme scheme;
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      std::string s = field<std::string>(j, "prepend_scheme", "Metaspace pre-tokenizer");
      if (s == "always")
        scheme = Metaspace::Scheme::Always;
      else if (s == "first")
        scheme = Metaspace::Scheme::First;
      else if (s == "never")
        scheme = Metaspace::Scheme::Never;
      else
        fail("Metaspace pre-tokenizer has unknown prepend_scheme '{}'", s);
    } else {
      scheme = field_or(j, "add_prefix_space", true) ? Metaspace::Scheme::Always : Metaspace::Scheme::Never;
    }
    return std::make_unique<Metaspace>(rep, scheme, field_or(j, "split", true));
  }
  if (t == "Digits")
    return char_split([](uint32_t c) { return is_numeric(c); },
                      field_or(j, "individual_digits", false) ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
  if (t == "WhitespaceSplit") return char_split([](uint32_t c) { return is_whitespace(c); }, SplitBehavior::Removed);
  if (t == "CharDelimiterSplit") {
    uint32_t d = single_char(field<std::string>(j, "delimiter", "CharDelimiterSplit"), "CharDelimiterSplit delimiter");
    return char_split([d](uint32_t c) { return c == d; }, SplitBehavior::Removed);
  }
  if (t == "Punctuation") {
    SplitBehavior b = j.contains("behavior") ? parse_behavior(j, "Punctuation pre-tokenizer") : SplitBehavior::Isolated;
    return char_split(
        [](uint32_t c) {
          return (c < 0x80 && ((c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
                               (c >= '{' && c <= '~'))) ||
                 is_punctuation(c);
        },
        b);
  }
  if (t == "Sequence") {
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) fail("Sequence pre-tokenizer has no \"pretokenizers\" array");
    std::vector<std::unique_ptr<PreTokenizer>> v;
    for (const auto& e : *it)
      if (auto p = make_pre_tokenizer(e, opt)) v.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(v));
  }
  fail("unsupported pre-tokenizer type '{}' in tokenizer.json (kiln supports Split, ByteLevel, Metaspace, "
       "Digits, WhitespaceSplit, CharDelimiterSplit, Punctuation, Sequence)",
       t);
}

}  // namespace kiln::tok
