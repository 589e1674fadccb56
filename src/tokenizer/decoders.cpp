#include "tokenizer/decoders.h"

#include <nlohmann/json.hpp>

#include "tokenizer/json_util.h"
#include "tokenizer/unicode.h"

namespace kiln::tok {

namespace {

uint32_t one_char(const std::string& s, const char* what) {
  size_t n = 0;
  if (s.empty()) fail("{} must be one character, got an empty string", what);
  uint32_t cp = utf8_decode(s, 0, n);
  if (n != s.size()) fail("{} must be one character, got '{}'", what, s);
  return cp;
}

void add_steps(const nlohmann::json& j, DecoderSpec& spec) {
  std::string t = type_of(j, "decoder");
  DecoderStep st{};
  if (t == "Sequence") {
    auto it = j.find("decoders");
    if (it == j.end() || !it->is_array()) fail("Sequence decoder has no \"decoders\" array");
    for (const auto& e : *it) add_steps(e, spec);
    return;
  }
  if (t == "ByteLevel") {
    st.kind = DecoderStep::Kind::ByteLevel;
  } else if (t == "Replace") {
    st.kind = DecoderStep::Kind::Replace;
    auto pat = j.find("pattern");
    if (pat == j.end()) fail("Replace decoder has no \"pattern\" field");
    bool is_regex = false;
    st.pattern = read_pattern(*pat, "Replace decoder", is_regex);
    if (is_regex || st.pattern.empty()) st.regex = std::make_shared<Regex>(st.pattern, !is_regex);
    st.content = field<std::string>(j, "content", "Replace decoder");
  } else if (t == "ByteFallback") {
    st.kind = DecoderStep::Kind::ByteFallback;
  } else if (t == "Fuse") {
    st.kind = DecoderStep::Kind::Fuse;
  } else if (t == "Strip") {
    st.kind = DecoderStep::Kind::Strip;
    st.strip_char = one_char(field<std::string>(j, "content", "Strip decoder"), "Strip decoder content");
    st.start = field<size_t>(j, "start", "Strip decoder");
    st.stop = field<size_t>(j, "stop", "Strip decoder");
  } else if (t == "Metaspace") {
    st.kind = DecoderStep::Kind::Metaspace;
    std::string rep = field_or<std::string>(j, "replacement", "\u2581");
    one_char(rep, "Metaspace decoder replacement");
    st.replacement = rep;
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      std::string s = field<std::string>(j, "prepend_scheme", "Metaspace decoder");
      if (s != "always" && s != "first" && s != "never") fail("Metaspace decoder has unknown prepend_scheme '{}'", s);
      st.prepend = s != "never";
    } else {
      st.prepend = field_or(j, "add_prefix_space", true);
    }
  } else {
    fail("unsupported decoder type '{}' in tokenizer.json (kiln supports ByteLevel, Replace, ByteFallback, Fuse, "
         "Strip, Metaspace, Sequence)",
         t);
  }
  spec.steps.push_back(std::move(st));
}

// "<0xAB>" -> 0xAB as the library reads it (u8::from_str_radix of the two middle bytes; '+' allowed).
int byte_token(std::string_view t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (t[3] == '+') return hex(t[4]);
  int h = hex(t[3]), l = hex(t[4]);
  if (h < 0 || l < 0) return -1;
  return h * 16 + l;
}

std::string replace_all(const DecoderStep& st, std::string_view s) {
  std::vector<Span> m;
  if (st.regex) {
    st.regex->find_all(s, m);
  } else {
    for (size_t i = s.find(st.pattern); i != std::string_view::npos; i = s.find(st.pattern, i + st.pattern.size()))
      m.push_back({i, i + st.pattern.size()});
  }
  std::string out;
  size_t prev = 0;
  for (const Span& sp : m) {
    out.append(s.substr(prev, sp.start - prev));
    out += st.content;
    prev = sp.end;
  }
  out.append(s.substr(prev));
  return out;
}

}  // namespace

int byte_fallback_value(std::string_view t) { return byte_token(t); }
std::string replace_for_decoder(const DecoderStep& st, std::string_view s) { return replace_all(st, s); }

DecoderSpec make_decoder(const nlohmann::json& j) {
  DecoderSpec spec;
  if (j.is_null()) return spec;
  spec.none = false;
  add_steps(j, spec);
  return spec;
}

std::string decode_tokens(const DecoderSpec& spec, std::vector<std::string> tokens) {
  if (spec.none) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  for (const DecoderStep& st : spec.steps) {
    std::vector<std::string> next;
    switch (st.kind) {
      case DecoderStep::Kind::ByteLevel: {
        std::string bytes;
        for (const std::string& t : tokens) {
          std::string b;
          bool ok = true;
          for (size_t i = 0; i < t.size() && ok;) {
            size_t n;
            int v = unicode_to_byte(utf8_decode(t, i, n));
            if (v < 0) ok = false;
            b.push_back(static_cast<char>(v));
            i += n;
          }
          bytes += ok ? b : t;
        }
        next.push_back(utf8_lossy(bytes));
        break;
      }
      case DecoderStep::Kind::Replace:
        for (const std::string& t : tokens) next.push_back(replace_all(st, t));
        break;
      case DecoderStep::Kind::ByteFallback: {
        std::string run;
        auto flush = [&] {
          if (run.empty()) return;
          if (utf8_valid(run)) {
            next.push_back(run);
          } else {
            for (size_t k = 0; k < run.size(); ++k) next.emplace_back("\xEF\xBF\xBD");
          }
          run.clear();
        };
        for (std::string& t : tokens) {
          int b = byte_token(t);
          if (b >= 0) {
            run.push_back(static_cast<char>(b));
          } else {
            flush();
            next.push_back(std::move(t));
          }
        }
        flush();
        break;
      }
      case DecoderStep::Kind::Fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        next.push_back(std::move(all));
        break;
      }
      case DecoderStep::Kind::Strip:
        for (const std::string& t : tokens) {
          std::vector<std::pair<size_t, size_t>> chars;  // (offset, length)
          std::vector<uint32_t> cps;
          for (size_t i = 0; i < t.size();) {
            size_t n;
            cps.push_back(utf8_decode(t, i, n));
            chars.emplace_back(i, n);
            i += n;
          }
          size_t start_cut = 0;
          for (size_t i = 0; i < std::min(st.start, cps.size()); ++i) {
            if (cps[i] != st.strip_char) break;
            start_cut = i + 1;
          }
          size_t stop_cut = cps.size();
          for (size_t i = 0; i < std::min(st.stop, cps.size() - start_cut); ++i) {
            size_t idx = cps.size() - i - 1;
            if (cps[idx] != st.strip_char) break;
            stop_cut = idx;
          }
          if (start_cut >= stop_cut) {
            next.emplace_back();
          } else {
            size_t b = chars[start_cut].first;
            size_t e = stop_cut < chars.size() ? chars[stop_cut].first : t.size();
            next.push_back(t.substr(b, e - b));
          }
        }
        break;
      case DecoderStep::Kind::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          const std::string& t = tokens[i];
          std::string o;
          for (size_t p = 0; p < t.size();) {
            if (t.compare(p, st.replacement.size(), st.replacement) == 0) {
              if (!(i == 0 && st.prepend)) o += ' ';
              p += st.replacement.size();
            } else {
              size_t n = utf8_len(static_cast<unsigned char>(t[p]));
              o.append(t, p, n);
              p += n;
            }
          }
          next.push_back(std::move(o));
        }
        break;
    }
    tokens.swap(next);
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace kiln::tok
