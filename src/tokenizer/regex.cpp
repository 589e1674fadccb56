#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>
#include <unicode/uniset.h>
#include <unicode/unistr.h>

#include <cstdio>
#include <map>
#include <mutex>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace kiln::tok {

namespace {

// The Unicode version of PCRE2's tables ("14.0.0" for Debian 12's 10.42).
std::string pcre2_unicode_version() {
  char buf[64] = {0};
  if (pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, buf) < 0) return "";
  std::string v = buf;
  size_t dot = v.find('.');
  if (dot != std::string::npos) dot = v.find('.', dot + 1);
  return dot == std::string::npos ? v : v.substr(0, dot);  // "14.0"
}

// Characters with property `prop` (a general category or script name) assigned after PCRE2's Unicode version,
// as a character-class fragment of \x{..} ranges, from ICU's newer tables. Oniguruma, the library's regex
// engine, knows them; without these, PCRE2 would treat them as unassigned. Cached per property.
std::string newer_members(const std::string& prop) {
  static std::mutex mu;
  static std::map<std::string, std::string> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(prop); it != cache.end()) return it->second;
  std::string frag;
  static const std::string pcre_version = pcre2_unicode_version();
  if (!pcre_version.empty()) {
    UErrorCode err = U_ZERO_ERROR;
    icu::UnicodeSet set(icu::UnicodeString::fromUTF8("[[:" + prop + ":]-[:Age=" + pcre_version + ":]]"), err);
    if (U_SUCCESS(err)) {
      char b[40];
      for (int32_t r = 0; r < set.getRangeCount(); ++r) {
        UChar32 lo = set.getRangeStart(r), hi = set.getRangeEnd(r);
        if (lo == hi)
          std::snprintf(b, sizeof b, "\\x{%X}", static_cast<unsigned>(lo));
        else
          std::snprintf(b, sizeof b, "\\x{%X}-\\x{%X}", static_cast<unsigned>(lo), static_cast<unsigned>(hi));
        frag += b;
      }
    }
  }
  cache[prop] = frag;
  return frag;
}

}  // namespace

std::string translate_pattern(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char n = p[i + 1];
      if (n == 's') {
        out += in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
      } else if (n == 'S' && !in_class) {
        out += "[^\\s\\x{85}]";
      } else if (n == 'w') {  // Oniguruma's Unicode \w: Letter | Mark | Number | Connector_Punctuation
        out += in_class ? "\\p{L}\\p{M}\\p{N}\\p{Pc}" : "[\\p{L}\\p{M}\\p{N}\\p{Pc}]";
      } else if (n == 'W' && !in_class) {
        out += "[^\\p{L}\\p{M}\\p{N}\\p{Pc}]";
      } else if (n == 'p' || n == 'P') {  // \p{X} / \pX, with what newer Unicode added to X
        size_t end = i + 2;
        std::string prop;
        if (end < p.size() && p[end] == '{') {
          size_t close = p.find('}', end);
          if (close == std::string_view::npos) {
            out += c;
            out += n;
            ++i;
            continue;
          }
          prop = std::string(p.substr(end + 1, close - end - 1));
          end = close + 1;
        } else if (end < p.size()) {
          prop = std::string(1, p[end]);
          end += 1;
        }
        std::string orig(p.substr(i, end - i));
        bool negated = n == 'P' || (!prop.empty() && prop[0] == '^');
        std::string extra = negated || prop.empty() ? std::string() : newer_members(prop);
        if (extra.empty()) out += orig;
        else if (in_class) out += orig + extra;
        else out += "[" + orig + extra + "]";
        i = end - 1;
        continue;
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:alpha:]
      size_t e = p.find(":]", i + 2);
      if (e != std::string_view::npos) {
        out.append(p.substr(i, e + 2 - i));
        i = e + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

namespace {
std::string escape_literal(std::string_view s) {
  std::string out = "\\Q";
  size_t pos = 0;
  while (true) {  // \E inside the literal must be split out of the \Q...\E quote
    size_t e = s.find("\\E", pos);
    if (e == std::string_view::npos) break;
    out.append(s.substr(pos, e - pos));
    out += "\\E\\\\E\\Q";
    pos = e + 2;
  }
  out.append(s.substr(pos));
  out += "\\E";
  return out;
}

// One JIT stack and match-data block per thread, grown on demand.
struct MatchScratch {
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* ctx = nullptr;
  pcre2_match_data* md = nullptr;
  MatchScratch() {
    stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
    ctx = pcre2_match_context_create(nullptr);
    if (stack && ctx) pcre2_jit_stack_assign(ctx, nullptr, stack);
    md = pcre2_match_data_create(16, nullptr);
  }
  ~MatchScratch() {
    if (md) pcre2_match_data_free(md);
    if (ctx) pcre2_match_context_free(ctx);
    if (stack) pcre2_jit_stack_free(stack);
  }
};
MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}
}  // namespace

Regex::Regex(std::string_view pattern, bool literal) : source_(pattern) {
  std::string p = literal ? escape_literal(pattern) : translate_pattern(pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &err, &off,
                        nullptr);
  if (!code_) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("tokenizer regex '{}' does not compile (PCRE2: {} at offset {})", std::string(pattern),
         reinterpret_cast<const char*>(msg), off);
  }
  pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter where JIT is unavailable
}

Regex::~Regex() {
  if (code_) pcre2_code_free(code_);
}

void Regex::find_all(std::string_view s, std::vector<Span>& out) const {
  MatchScratch& sc = scratch();
  auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (pos <= s.size()) {
    int rc = pcre2_match(code_, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, sc.md, sc.ctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("tokenizer regex '{}' failed on a {}-byte input: {}", source_, s.size(),
           reinterpret_cast<const char*>(msg));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(sc.md);
    size_t ms = ov[0], me = ov[1];
    if (ms == me && have_last && last_end == me) {
      // Oniguruma-style: no empty match right after the previous match; step one character.
      if (pos >= s.size()) break;
      pos += utf8_len(static_cast<unsigned char>(s[pos]));
      continue;
    }
    out.push_back({ms, me});
    have_last = true;
    last_end = me;
    if (me == ms) {
      if (me >= s.size()) break;
      pos = me + utf8_len(static_cast<unsigned char>(s[me]));
    } else {
      pos = me;
    }
  }
}

}  // namespace kiln::tok
