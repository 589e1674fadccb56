// Regex: a PCRE2 pattern (UTF + UCP, JIT-compiled) with the match iteration the tokenizers library gets
// from Oniguruma: leftmost matches, and an empty match right after the previous match is skipped.
//
// Oniguruma's \s also matches U+0085 (NEL), which PCRE2's \s does not; \s and \S are rewritten so that
// the two agree.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct pcre2_real_code_8;

namespace kiln::tok {

struct Span {
  size_t start, end;
};

class Regex {
 public:
  // `literal`: the pattern is a plain string to find (escaped before compiling).
  Regex(std::string_view pattern, bool literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends every match in s (valid UTF-8) to out.
  void find_all(std::string_view s, std::vector<Span>& out) const;
  const std::string& pattern() const { return source_; }

 private:
  std::string source_;
  pcre2_real_code_8* code_ = nullptr;
};

// Rewrites an Oniguruma-style pattern for PCRE2 (exposed for tests).
std::string translate_pattern(std::string_view pattern);

}  // namespace kiln::tok
