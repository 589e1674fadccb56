#include "tokenizer/normalizers.h"

#include <vector>

#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace kiln::tok {
namespace {

class UnicodeNorm : public Normalizer {
 public:
  explicit UnicodeNorm(NormForm f) : form_(f) {}
  void normalize(std::string& s, bool&) const override { tok::normalize(form_, s); }

 private:
  NormForm form_;
};

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& s, bool&) const override {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
      size_t n;
      uint32_t cp = utf8_decode(s, i, n);
      append_lowercase(out, cp);
      i += n;
    }
    s.swap(out);
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool l, bool r) : left_(l), right_(r) {}
  void normalize(std::string& s, bool& at_origin) const override {
    size_t b = 0, e = s.size();
    if (left_) {
      while (b < e) {
        size_t n;
        if (!is_whitespace(utf8_decode(s, b, n))) break;
        b += n;
      }
    }
    if (right_) {
      while (e > b) {
        size_t p = e - 1;
        while (p > b && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
        size_t n;
        if (!is_whitespace(utf8_decode(s, p, n))) break;
        e = p;
      }
    }
    if (b > 0) at_origin = false;
    s = s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

class StripAccents : public Normalizer {
 public:
  void normalize(std::string& s, bool& at_origin) const override {
    std::string out;
    out.reserve(s.size());
    bool first = true;
    for (size_t i = 0; i < s.size();) {
      size_t n;
      uint32_t cp = utf8_decode(s, i, n);
      if (!is_mark(cp)) {
        out.append(s, i, n);
        first = false;
      } else if (first) {
        at_origin = false;
      }
      i += n;
    }
    s.swap(out);
  }
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prepend_(std::move(p)) {}
  void normalize(std::string& s, bool&) const override {
    if (!s.empty()) s.insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

class Replace : public Normalizer {
 public:
  Replace(const std::string& pattern, bool is_regex, std::string content)
      : re_(pattern, !is_regex), content_(std::move(content)) {}
  void normalize(std::string& s, bool& at_origin) const override {
    std::vector<Span> m;
    re_.find_all(s, m);
    if (m.empty()) return;
    std::string out;
    out.reserve(s.size());
    size_t prev = 0;
    for (const Span& sp : m) {
      out.append(s, prev, sp.start - prev);
      out += content_;
      prev = sp.end;
    }
    out.append(s, prev, std::string::npos);
    if (m.front().start == 0 && m.front().end > 0 && content_.empty()) at_origin = false;
    s.swap(out);
  }

 private:
  Regex re_;
  std::string content_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> v) : v_(std::move(v)) {}
  void normalize(std::string& s, bool& at_origin) const override {
    for (const auto& n : v_) n->normalize(s, at_origin);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> v_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, "normalizer");
  if (t == "NFC") return std::make_unique<UnicodeNorm>(NormForm::NFC);
  if (t == "NFD") return std::make_unique<UnicodeNorm>(NormForm::NFD);
  if (t == "NFKC") return std::make_unique<UnicodeNorm>(NormForm::NFKC);
  if (t == "NFKD") return std::make_unique<UnicodeNorm>(NormForm::NFKD);
  if (t == "Lowercase") return std::make_unique<Lowercase>();
  if (t == "Strip")
    return std::make_unique<Strip>(field_or(j, "strip_left", true), field_or(j, "strip_right", true));
  if (t == "StripAccents") return std::make_unique<StripAccents>();
  if (t == "Prepend") return std::make_unique<Prepend>(field<std::string>(j, "prepend", "Prepend normalizer"));
  if (t == "Replace") {
    bool is_regex = false;
    auto pat = j.find("pattern");
    if (pat == j.end()) fail("Replace normalizer has no \"pattern\" field");
    std::string p = read_pattern(*pat, "Replace normalizer", is_regex);
    return std::make_unique<Replace>(p, is_regex, field<std::string>(j, "content", "Replace normalizer"));
  }
  if (t == "Sequence") {
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) fail("Sequence normalizer has no \"normalizers\" array");
    std::vector<std::unique_ptr<Normalizer>> v;
    for (const auto& e : *it)
      if (auto n = make_normalizer(e)) v.push_back(std::move(n));
    return std::make_unique<Sequence>(std::move(v));
  }
  fail("unsupported normalizer type '{}' in tokenizer.json (kiln supports NFC, NFD, NFKC, NFKD, Lowercase, "
       "Strip, StripAccents, Prepend, Replace, Sequence)",
       t);
}

}  // namespace kiln::tok
