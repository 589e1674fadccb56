#include "tokenizer/unicode.h"

#include <unicode/bytestream.h>
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include "core/error.h"

namespace kiln::tok {

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

// For a lead byte: the number of continuation bytes and the allowed range of the first one
// (Unicode Table 3-7, "well-formed UTF-8 byte sequences"). need == -1: not a lead byte.
struct Lead {
  int need;
  unsigned char lo, hi;
};

inline Lead lead_info(unsigned char c) {
  if (c < 0x80) return {0, 0, 0};
  if (c >= 0xC2 && c <= 0xDF) return {1, 0x80, 0xBF};
  if (c == 0xE0) return {2, 0xA0, 0xBF};
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return {2, 0x80, 0xBF};
  if (c == 0xED) return {2, 0x80, 0x9F};
  if (c == 0xF0) return {3, 0x90, 0xBF};
  if (c >= 0xF1 && c <= 0xF3) return {3, 0x80, 0xBF};
  if (c == 0xF4) return {3, 0x80, 0x8F};
  return {-1, 0, 0};
}

// Examines the sequence at s[i]: returns its length when valid; otherwise sets `bad` to the length of
// the maximal invalid subpart (>= 1) and returns 0; sets `incomplete` when it ran off the end while
// still a valid prefix.
inline size_t check_seq(std::string_view s, size_t i, size_t& bad, bool& incomplete) {
  incomplete = false;
  unsigned char c = static_cast<unsigned char>(s[i]);
  Lead l = lead_info(c);
  if (l.need == 0) return 1;
  if (l.need < 0) {
    bad = 1;
    return 0;
  }
  size_t k = 1;
  for (; k <= static_cast<size_t>(l.need); ++k) {
    if (i + k >= s.size()) {
      incomplete = true;
      bad = k;
      return 0;
    }
    unsigned char b = static_cast<unsigned char>(s[i + k]);
    unsigned char lo = k == 1 ? l.lo : 0x80, hi = k == 1 ? l.hi : 0xBF;
    if (b < lo || b > hi) {
      bad = k;
      return 0;
    }
  }
  return k;
}

}  // namespace

size_t utf8_valid_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t bad = 0;
    bool inc = false;
    size_t n = check_seq(s, i, bad, inc);
    if (n == 0) return i;
    i += n;
  }
  return i;
}

size_t utf8_lossy_append(std::string& out, std::string_view s, bool final_chunk) {
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
    out.append(s.data() + start, i - start);
    if (i >= s.size()) break;
    size_t bad = 0;
    bool inc = false;
    size_t n = check_seq(s, i, bad, inc);
    if (n) {
      out.append(s.data() + i, n);
      i += n;
    } else if (inc && !final_chunk) {
      return i;
    } else {
      out.append("\xEF\xBF\xBD");
      i += bad;
    }
  }
  return s.size();
}

namespace {
struct ByteTables {
  std::array<uint32_t, 256> b2u{};
  std::array<int16_t, 324> u2b{};  // every mapped code point is < 324
  ByteTables() {
    u2b.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      b2u[b] = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      u2b[b2u[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteTables& byte_tables() {
  static const ByteTables t;
  return t;
}
}  // namespace

const std::array<uint32_t, 256>& byte_to_unicode() { return byte_tables().b2u; }
int unicode_to_byte(uint32_t cp) { return cp < 324 ? byte_tables().u2b[cp] : -1; }

bool is_whitespace(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return u_isUWhiteSpace(static_cast<UChar32>(cp));
}
bool is_numeric(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_N_MASK) != 0;
}
bool is_alphanumeric(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_ALPHABETIC) || is_numeric(cp);
}
bool is_mark(uint32_t cp) { return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_M_MASK) != 0; }
bool is_punctuation(uint32_t cp) { return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_P_MASK) != 0; }

bool is_word_char(uint32_t cp) {
  if (cp < 0x80) return cp == '_' || (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
  auto c = static_cast<UChar32>(cp);
  return u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL) ||
         (U_GET_GC_MASK(c) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}

void append_lowercase(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
    return;
  }
  icu::UnicodeString u(static_cast<UChar32>(cp));
  u.toLower(icu::Locale::getRoot());
  u.toUTF8String(out);
}

void normalize(NormForm form, std::string& s) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case NormForm::NFC: n = icu::Normalizer2::getNFCInstance(err); break;
    case NormForm::NFD: n = icu::Normalizer2::getNFDInstance(err); break;
    case NormForm::NFKC: n = icu::Normalizer2::getNFKCInstance(err); break;
    case NormForm::NFKD: n = icu::Normalizer2::getNFKDInstance(err); break;
  }
  if (U_FAILURE(err) || !n) fail("ICU normalizer unavailable: {}", u_errorName(err));
  if (n->isNormalizedUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())), err) && U_SUCCESS(err))
    return;
  err = U_ZERO_ERROR;
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  icu::StringByteSink<std::string> sink(&out);
  n->normalizeUTF8(0, icu::StringPiece(s.data(), static_cast<int32_t>(s.size())), sink, nullptr, err);
  if (U_FAILURE(err)) fail("ICU normalization failed: {}", u_errorName(err));
  s.swap(out);
}

}  // namespace kiln::tok
