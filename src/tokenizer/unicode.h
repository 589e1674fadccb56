// UTF-8 helpers, GPT-2's byte <-> unicode table, and the few Unicode properties and normalization forms the
// tokenizer needs (normalization and properties come from ICU; nothing here is a hand-rolled Unicode table).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::tok {

// Length of the UTF-8 sequence a lead byte starts (1 for bytes that are not a valid lead).
inline size_t utf8_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// Decodes the code point at s[i] of a valid UTF-8 string; sets len to its byte length.
inline uint32_t utf8_decode(std::string_view s, size_t i, size_t& len) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    len = 1;
    return c;
  }
  len = utf8_len(c);
  if (i + len > s.size()) len = s.size() - i;
  uint32_t cp = len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

void utf8_append(std::string& out, uint32_t cp);

// Length of the longest prefix of s that is valid UTF-8.
size_t utf8_valid_prefix(std::string_view s);
inline bool utf8_valid(std::string_view s) { return utf8_valid_prefix(s) == s.size(); }

// Appends s to out with every maximal invalid subsequence replaced by U+FFFD (Rust's from_utf8_lossy).
// With `final_chunk` false, an incomplete but so far valid sequence at the end is not written; the return
// value is how many bytes of s were consumed.
size_t utf8_lossy_append(std::string& out, std::string_view s, bool final_chunk = true);
inline std::string utf8_lossy(std::string_view s) {
  std::string out;
  utf8_lossy_append(out, s, true);
  return out;
}

// GPT-2's reversible byte -> code point table and its inverse (-1 for unmapped code points).
const std::array<uint32_t, 256>& byte_to_unicode();
int unicode_to_byte(uint32_t cp);

// Unicode properties (ICU).
bool is_whitespace(uint32_t cp);  // White_Space, as Rust's char::is_whitespace
bool is_numeric(uint32_t cp);     // Nd | Nl | No, as Rust's char::is_numeric
bool is_alphanumeric(uint32_t cp);  // Alphabetic or numeric, as Rust's char::is_alphanumeric
bool is_mark(uint32_t cp);        // general category M*
bool is_punctuation(uint32_t cp);  // general category P*
bool is_word_char(uint32_t cp);   // \w of Rust's regex crate: Alphabetic, M, Nd, Pc, Join_Control
void append_lowercase(std::string& out, uint32_t cp);  // full lower-case mapping of one character

enum class NormForm { NFC, NFD, NFKC, NFKD };
// Normalizes s in place (no copy when it already is in that form).
void normalize(NormForm form, std::string& s);

}  // namespace kiln::tok
