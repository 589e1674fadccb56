// Jinja lexing (text, {{ }}, {% %}, {# #} with -, + and transformers' trim_blocks + lstrip_blocks) and parsing.
#include <cctype>

#include "core/error.h"
#include "tokenizer/jinja.h"

namespace kiln::tok::jinja {
namespace {

// ---- template segments ----
struct Seg {
  enum class K { Text, Expr, Stmt } k;
  std::string s;
  size_t line;
};

// The end of a tag: `close` outside string literals and outside open brackets (as Jinja's lexer balances them).
size_t find_close(const std::string& src, size_t from, const char* close) {
  char q = 0;
  int depth = 0;
  for (size_t i = from; i + 1 < src.size(); ++i) {
    char c = src[i];
    if (q) {
      if (c == '\\') ++i;
      else if (c == q) q = 0;
    } else if (c == '\'' || c == '"') {
      q = c;
    } else if (depth == 0 && c == close[0] && src[i + 1] == close[1]) {
      return i;
    } else if (c == '{' || c == '[' || c == '(') {
      ++depth;
    } else if ((c == '}' || c == ']' || c == ')') && depth > 0) {
      --depth;
    }
  }
  return std::string::npos;
}

size_t line_of(const std::string& src, size_t pos) {
  size_t n = 1;
  for (size_t i = 0; i < pos && i < src.size(); ++i) n += src[i] == '\n';
  return n;
}

std::vector<Seg> segment(const std::string& src) {
  std::vector<Seg> out;
  size_t pos = 0;
  bool strip_next = false, trim_next_newline = false;
  bool line_starting = true;  // the text so far ends a line (Jinja's lexer state for lstrip_blocks)
  while (pos <= src.size()) {
    size_t open = src.find('{', pos);
    while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' &&
           src[open + 1] != '#')
      open = src.find('{', open + 1);
    if (open != std::string::npos && open + 1 >= src.size()) open = std::string::npos;
    std::string text = src.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
    if (strip_next) {
      size_t k = 0;
      while (k < text.size() && std::isspace(static_cast<unsigned char>(text[k]))) ++k;
      line_starting = k > 0 ? text[k - 1] == '\n' : line_starting;
      text.erase(0, k);
    } else if (trim_next_newline) {
      if (text.rfind("\r\n", 0) == 0) text.erase(0, 2), line_starting = true;
      else if (!text.empty() && text[0] == '\n') text.erase(0, 1), line_starting = true;
    }
    strip_next = trim_next_newline = false;
    if (open == std::string::npos) {
      if (!text.empty()) out.push_back({Seg::K::Text, text, 0});
      break;
    }
    char kind = src[open + 1];
    size_t inner = open + 2;
    bool lstrip = false, plus = false;
    if (inner < src.size() && src[inner] == '-') lstrip = true, ++inner;
    else if (inner < src.size() && src[inner] == '+') plus = true, ++inner;
    const char* close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t end = kind == '#' ? src.find(close, inner) : find_close(src, inner, close);
    if (end == std::string::npos) fail("chat template line {}: unclosed '{{{}'", line_of(src, open), kind);
    bool rstrip = end > inner && src[end - 1] == '-';
    std::string body = src.substr(inner, end - inner - (rstrip ? 1 : 0));
    const bool block = kind != '{';
    if (lstrip) {
      while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    } else if (block && !plus) {  // lstrip_blocks: spaces and tabs between a line start and the tag
      size_t nl = text.rfind('\n');
      size_t lpos = nl == std::string::npos ? 0 : nl + 1;
      if (nl != std::string::npos || line_starting) {
        bool blank = true;
        for (size_t k = lpos; k < text.size(); ++k) blank = blank && std::isspace(static_cast<unsigned char>(text[k]));
        if (blank) text.erase(lpos);
      }
    }
    if (!text.empty()) out.push_back({Seg::K::Text, text, 0});
    if (kind == '{') out.push_back({Seg::K::Expr, body, line_of(src, open)});
    else if (kind == '%') out.push_back({Seg::K::Stmt, body, line_of(src, open)});
    pos = end + 2;
    line_starting = false;
    if (rstrip) strip_next = true;
    else if (block) trim_next_newline = true;  // trim_blocks
    if (pos >= src.size()) break;
  }
  return out;
}

// ---- expression tokens ----
struct Tok {
  enum class K { Name, Str, Int, Float, Op, End } k;
  std::string s;
  int64_t i = 0;
  double f = 0;
};

std::vector<Tok> lex(const std::string& s, size_t line) {
  std::vector<Tok> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t b = i;
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
      out.push_back({Tok::K::Name, s.substr(b, i - b)});
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t b = i;
      while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
      // Jinja's float: digits, then a fraction (.digits), an exponent (e, an optional sign, digits), or both.
      auto digit_at = [&](size_t k) { return k < s.size() && std::isdigit(static_cast<unsigned char>(s[k])); };
      bool is_float = false;
      if (i < s.size() && s[i] == '.' && digit_at(i + 1)) {
        is_float = true;
        ++i;
        while (digit_at(i) || (i < s.size() && s[i] == '_' && digit_at(i + 1))) ++i;
      }
      if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        const size_t d = i + 1 + (i + 1 < s.size() && (s[i + 1] == '+' || s[i + 1] == '-'));
        if (digit_at(d)) {
          is_float = true;
          i = d;
          while (digit_at(i) || (i < s.size() && s[i] == '_' && digit_at(i + 1))) ++i;
        }
      }
      std::string num = s.substr(b, i - b);
      std::erase(num, '_');
      Tok t{is_float ? Tok::K::Float : Tok::K::Int, num};
      if (is_float) t.f = std::stod(num);
      else t.i = std::stoll(num);
      out.push_back(t);
      continue;
    }
    if (c == '\'' || c == '"') {
      std::string v;
      ++i;
      while (i < s.size() && s[i] != c) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          char e = s[++i];
          switch (e) {
            case 'n': v += '\n'; break;
            case 't': v += '\t'; break;
            case 'r': v += '\r'; break;
            case '\\': v += '\\'; break;
            case '\'': v += '\''; break;
            case '"': v += '"'; break;
            case '0': v += '\0'; break;
            case 'u': {
              if (i + 4 >= s.size()) fail("chat template line {}: bad \\u escape", line);
              uint32_t cp = static_cast<uint32_t>(std::stoul(s.substr(i + 1, 4), nullptr, 16));
              i += 4;
              if (cp < 0x80) v += static_cast<char>(cp);
              else if (cp < 0x800) { v += static_cast<char>(0xC0 | (cp >> 6)); v += static_cast<char>(0x80 | (cp & 0x3F)); }
              else { v += static_cast<char>(0xE0 | (cp >> 12)); v += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)); v += static_cast<char>(0x80 | (cp & 0x3F)); }
              break;
            }
            default: v += '\\'; v += e;
          }
          ++i;
        } else {
          v += s[i++];
        }
      }
      if (i >= s.size()) fail("chat template line {}: unterminated string", line);
      ++i;
      out.push_back({Tok::K::Str, v});
      continue;
    }
    static const char* ops[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(",
                                ")", "[", "]", "{", "}", ".", ",", ":", "|", "="};
    bool found = false;
    for (const char* op : ops) {
      size_t n = std::char_traits<char>::length(op);
      if (s.compare(i, n, op) == 0) {
        out.push_back({Tok::K::Op, op});
        i += n;
        found = true;
        break;
      }
    }
    if (!found) fail("chat template line {}: unexpected character '{}'", line, c);
  }
  out.push_back({Tok::K::End, ""});
  return out;
}

// ---- expression parser (Jinja's precedence) ----
class ExprParser {
 public:
  ExprParser(std::vector<Tok> t, size_t line) : t_(std::move(t)), line_(line) {}
  const Tok& peek(size_t k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool is_op(const char* op, size_t k = 0) const { return peek(k).k == Tok::K::Op && peek(k).s == op; }
  bool is_name(const char* n, size_t k = 0) const { return peek(k).k == Tok::K::Name && peek(k).s == n; }
  bool at_end() const { return peek().k == Tok::K::End; }
  Tok next() { return t_[std::min(p_++, t_.size() - 1)]; }
  void expect_op(const char* op) {
    if (!is_op(op)) fail("chat template line {}: expected '{}' but found '{}'", line_, op, peek().s);
    ++p_;
  }
  std::string expect_name() {
    if (peek().k != Tok::K::Name) fail("chat template line {}: expected a name but found '{}'", line_, peek().s);
    return next().s;
  }
  [[noreturn]] void error(const std::string& what) const { fail("chat template line {}: {}", line_, what); }

  ExprP expression() {  // condexpr
    ExprP e = or_expr();
    while (is_name("if")) {
      ++p_;
      auto c = mk(Expr::K::Cond);
      c->a = e;
      c->b = or_expr();
      if (is_name("else")) {
        ++p_;
        c->c = expression();
      }
      e = c;
    }
    return e;
  }
  // A comma-separated expression list without brackets becomes a list literal (set a = 1, 2).
  ExprP tuple_or_expression() {
    ExprP e = expression();
    if (!is_op(",")) return e;
    auto l = mk(Expr::K::ListLit);
    l->args.push_back(e);
    while (is_op(",")) {
      ++p_;
      if (at_end()) break;
      l->args.push_back(expression());
    }
    return l;
  }
  ExprP no_cond_expression() { return or_expr(); }

 private:
  static ExprP mk(Expr::K k) {
    auto e = std::make_shared<Expr>();
    e->k = k;
    return e;
  }
  ExprP bin(const std::string& op, ExprP l, ExprP r) {
    auto e = mk(Expr::K::Bin);
    e->name = op;
    e->a = std::move(l);
    e->b = std::move(r);
    return e;
  }
  ExprP or_expr() {
    ExprP l = and_expr();
    while (is_name("or")) { ++p_; l = bin("or", l, and_expr()); }
    return l;
  }
  ExprP and_expr() {
    ExprP l = not_expr();
    while (is_name("and")) { ++p_; l = bin("and", l, not_expr()); }
    return l;
  }
  ExprP not_expr() {
    if (is_name("not")) {
      ++p_;
      auto e = mk(Expr::K::Unary);
      e->name = "not";
      e->a = not_expr();
      return e;
    }
    return compare();
  }
  ExprP compare() {
    ExprP l = math1();
    while (true) {
      if (peek().k == Tok::K::Op && (peek().s == "==" || peek().s == "!=" || peek().s == "<" || peek().s == ">" ||
                                     peek().s == "<=" || peek().s == ">=")) {
        std::string op = next().s;
        l = bin(op, l, math1());
      } else if (is_name("in")) {
        ++p_;
        l = bin("in", l, math1());
      } else if (is_name("not") && is_name("in", 1)) {
        p_ += 2;
        l = bin("not in", l, math1());
      } else {
        return l;
      }
    }
  }
  ExprP math1() {
    ExprP l = concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().s;
      l = bin(op, l, concat());
    }
    return l;
  }
  ExprP concat() {
    ExprP l = math2();
    while (is_op("~")) { ++p_; l = bin("~", l, math2()); }
    return l;
  }
  ExprP math2() {
    ExprP l = pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().s;
      l = bin(op, l, pow());
    }
    return l;
  }
  ExprP pow() {
    ExprP l = unary();
    while (is_op("**")) { ++p_; l = bin("**", l, unary()); }
    return l;
  }
  ExprP unary() {
    if (is_op("-") || is_op("+")) {
      std::string op = next().s;
      auto e = mk(Expr::K::Unary);
      e->name = op;
      e->a = unary_nofilter();
      return filters(e);
    }
    return filters(postfix(primary()));
  }
  ExprP unary_nofilter() {
    if (is_op("-") || is_op("+")) {
      std::string op = next().s;
      auto e = mk(Expr::K::Unary);
      e->name = op;
      e->a = unary_nofilter();
      return e;
    }
    return postfix(primary());
  }
  void call_args(std::vector<ExprP>& args, std::vector<std::pair<std::string, ExprP>>& kwargs) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().k == Tok::K::Name && is_op("=", 1)) {
        std::string k = next().s;
        ++p_;
        kwargs.emplace_back(k, expression());
      } else {
        args.push_back(expression());
      }
      if (!is_op(",")) break;
      ++p_;
    }
    expect_op(")");
  }
  ExprP filters(ExprP e) {
    while (true) {
      if (is_op("|")) {
        ++p_;
        auto f = mk(Expr::K::Filter);
        f->name = expect_name();
        while (is_op(".")) {
          ++p_;
          f->name += '.';
          f->name += expect_name();
        }
        f->a = e;
        if (is_op("(")) call_args(f->args, f->kwargs);
        e = f;
      } else if (is_name("is")) {
        ++p_;
        auto t = mk(Expr::K::Test);
        if (is_name("not")) { ++p_; t->negated = true; }
        t->name = expect_name();
        t->a = e;
        if (is_op("(")) {
          call_args(t->args, t->kwargs);
        } else if ((peek().k == Tok::K::Str || peek().k == Tok::K::Int || peek().k == Tok::K::Float ||
                    (peek().k == Tok::K::Name && !is_name("else") && !is_name("or") && !is_name("and") &&
                     !is_name("if") && !is_name("is") && !is_name("in") && !is_name("not")))) {
          t->args.push_back(postfix(primary()));
        }
        e = t;
      } else if (is_op("(")) {
        auto c = mk(Expr::K::Call);
        c->a = e;
        call_args(c->args, c->kwargs);
        e = c;
      } else {
        return e;
      }
    }
  }
  ExprP postfix(ExprP e) {
    while (true) {
      if (is_op(".")) {
        ++p_;
        auto a = mk(Expr::K::Attr);
        a->a = e;
        if (peek().k == Tok::K::Int) a->name = std::to_string(next().i);
        else a->name = expect_name();
        e = a;
      } else if (is_op("[")) {
        ++p_;
        ExprP idx[3];
        int part = 0;
        bool slice = false;
        while (!is_op("]")) {
          if (is_op(":")) {
            slice = true;
            if (++part > 2) error("bad slice");
            ++p_;
            continue;
          }
          idx[part] = expression();
        }
        expect_op("]");
        if (slice) {
          auto s = mk(Expr::K::Slice);
          s->a = e;
          s->b = idx[0];
          s->c = idx[1];
          s->d = idx[2];
          e = s;
        } else {
          if (!idx[0]) error("empty subscript");
          auto it = mk(Expr::K::Item);
          it->a = e;
          it->b = idx[0];
          e = it;
        }
      } else if (is_op("(")) {
        auto c = mk(Expr::K::Call);
        c->a = e;
        call_args(c->args, c->kwargs);
        e = c;
      } else {
        return e;
      }
    }
  }
  ExprP primary() {
    Tok t = next();
    auto lit = [&](Value v) {
      auto e = mk(Expr::K::Lit);
      e->lit = std::move(v);
      return e;
    };
    switch (t.k) {
      case Tok::K::Str: {
        std::string s = t.s;
        while (peek().k == Tok::K::Str) s += next().s;  // adjacent literals concatenate
        return lit(Value::str(s));
      }
      case Tok::K::Int: return lit(Value::integer(t.i));
      case Tok::K::Float: return lit(Value::real(t.f));
      case Tok::K::Name: {
        if (t.s == "true" || t.s == "True") return lit(Value::boolean(true));
        if (t.s == "false" || t.s == "False") return lit(Value::boolean(false));
        if (t.s == "none" || t.s == "None") return lit(Value::none());
        auto n = mk(Expr::K::Name);
        n->name = t.s;
        return n;
      }
      case Tok::K::Op:
        if (t.s == "(") {
          ExprP e = tuple_or_expression();
          expect_op(")");
          return e;
        }
        if (t.s == "[") {
          auto l = mk(Expr::K::ListLit);
          while (!is_op("]")) {
            l->args.push_back(expression());
            if (!is_op(",")) break;
            ++p_;
          }
          expect_op("]");
          return l;
        }
        if (t.s == "{") {
          auto d = mk(Expr::K::DictLit);
          while (!is_op("}")) {
            d->args.push_back(expression());
            expect_op(":");
            d->args.push_back(expression());
            if (!is_op(",")) break;
            ++p_;
          }
          expect_op("}");
          return d;
        }
        break;
      case Tok::K::End: error("unexpected end of expression");
    }
    error("unexpected '" + t.s + "'");
  }

  std::vector<Tok> t_;
  size_t p_ = 0;
  size_t line_;
};

// ---- statements ----
class Parser {
 public:
  explicit Parser(std::vector<Seg> segs) : segs_(std::move(segs)) {}

  // Parses nodes until one of the end keywords (returned through `stop`) or the end of the template.
  Body block(const std::vector<std::string>& ends, std::string* stop, ExprParser** stop_parser) {
    Body body;
    while (i_ < segs_.size()) {
      Seg& s = segs_[i_++];
      if (s.k == Seg::K::Text) {
        auto n = node(Node::K::Text);
        n->text = s.s;
        body.push_back(n);
        continue;
      }
      if (s.k == Seg::K::Expr) {
        ExprParser ep(lex(s.s, s.line), s.line);
        auto n = node(Node::K::Out);
        n->expr = ep.expression();
        if (!ep.at_end()) ep.error("unexpected '" + ep.peek().s + "' in {{ }}");
        body.push_back(n);
        continue;
      }
      parsers_.push_back(std::make_unique<ExprParser>(lex(s.s, s.line), s.line));
      ExprParser& ep = *parsers_.back();
      std::string kw = ep.expect_name();
      for (const std::string& e : ends)
        if (kw == e) {
          if (stop) *stop = kw;
          if (stop_parser) *stop_parser = &ep;
          return body;
        }
      body.push_back(statement(kw, ep, s.line));
    }
    if (!ends.empty()) fail("chat template: missing {{% {} %}}", ends.back());
    return body;
  }

 private:
  static NodeP node(Node::K k) {
    auto n = std::make_shared<Node>();
    n->k = k;
    return n;
  }
  NodeP statement(const std::string& kw, ExprParser& ep, size_t line) {
    if (kw == "if") {
      auto n = node(Node::K::If);
      ExprP cond = ep.expression();
      while (true) {
        std::string stop;
        ExprParser* sp = nullptr;
        Body b = block({"elif", "else", "endif"}, &stop, &sp);
        n->branches.emplace_back(cond, std::move(b));
        if (stop == "endif") break;
        if (stop == "else") {
          cond = nullptr;
        } else {
          cond = sp->expression();
        }
        if (stop == "else") {
          std::string stop2;
          Body eb = block({"endif"}, &stop2, nullptr);
          n->branches.emplace_back(nullptr, std::move(eb));
          break;
        }
      }
      return n;
    }
    if (kw == "for") {
      auto n = node(Node::K::For);
      n->targets.push_back(ep.expect_name());
      while (ep.is_op(",")) {
        ep.next();
        n->targets.push_back(ep.expect_name());
      }
      if (!ep.is_name("in")) ep.error("expected 'in' in for loop");
      ep.next();
      n->expr = ep.no_cond_expression();
      if (ep.is_name("if")) {
        ep.next();
        n->filter = ep.expression();
      }
      if (ep.is_name("recursive")) ep.error("recursive for loops are not supported");
      std::string stop;
      n->body = block({"else", "endfor"}, &stop, nullptr);
      if (stop == "else") n->else_body = block({"endfor"}, &stop, nullptr);
      return n;
    }
    if (kw == "set") {
      std::string name = ep.expect_name();
      if (ep.is_op(".")) {
        ep.next();
        auto n = node(Node::K::Set);
        n->attr_set = true;
        n->targets = {name, ep.expect_name()};
        ep.expect_op("=");
        n->expr = ep.tuple_or_expression();
        return n;
      }
      std::vector<std::string> names{name};
      while (ep.is_op(",")) {
        ep.next();
        names.push_back(ep.expect_name());
      }
      if (ep.at_end()) {
        if (names.size() != 1) ep.error("block set takes one name");
        auto n = node(Node::K::SetBlock);
        n->targets = names;
        std::string stop;
        n->body = block({"endset"}, &stop, nullptr);
        return n;
      }
      ep.expect_op("=");
      auto n = node(Node::K::Set);
      n->targets = names;
      n->expr = ep.tuple_or_expression();
      return n;
    }
    if (kw == "macro") {
      auto n = node(Node::K::Macro);
      n->targets = {ep.expect_name()};
      ep.expect_op("(");
      while (!ep.is_op(")")) {
        std::string p = ep.expect_name();
        ExprP dflt;
        if (ep.is_op("=")) {
          ep.next();
          dflt = ep.expression();
        }
        n->params.emplace_back(p, dflt);
        if (!ep.is_op(",")) break;
        ep.next();
      }
      ep.expect_op(")");
      std::string stop;
      n->body = block({"endmacro"}, &stop, nullptr);
      return n;
    }
    if (kw == "break") return node(Node::K::Break);
    if (kw == "continue") return node(Node::K::Continue);
    if (kw == "generation") {  // transformers' marker for assistant masks: render the body as is
      std::string stop;
      auto n = node(Node::K::If);
      auto t = std::make_shared<Expr>();
      t->k = Expr::K::Lit;
      t->lit = Value::boolean(true);
      n->branches.emplace_back(t, block({"endgeneration"}, &stop, nullptr));
      return n;
    }
    fail("chat template line {}: unsupported statement '{{% {} %}}'", line, kw);
  }

  std::vector<Seg> segs_;
  size_t i_ = 0;
  std::vector<std::unique_ptr<ExprParser>> parsers_;  // kept: statements hold on to theirs while nested
};

}  // namespace

Body parse(const std::string& source) {
  // As Jinja's lexer: every newline sequence (\r\n, \r) becomes \n, and one newline at the end of the template is
  // dropped (keep_trailing_newline is off in transformers' environment).
  std::string src;
  src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      src += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      src += source[i];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  Parser p(segment(src));
  return p.block({}, nullptr, nullptr);
}

}  // namespace kiln::tok::jinja
