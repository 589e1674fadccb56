// Jinja rendering: scopes, statements, operators, and str()/json of values (Python semantics).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "tokenizer/jinja.h"
#include "tokenizer/jinja_builtins.h"

namespace kiln::tok::jinja {

bool truthy(const Value& v) {
  switch (v.t) {
    case Value::T::Undefined:
    case Value::T::None: return false;
    case Value::T::Bool: return v.b;
    case Value::T::Int: return v.i != 0;
    case Value::T::Float: return v.f != 0;
    case Value::T::Str: return !v.s.empty();
    case Value::T::List: return !v.list->empty();
    case Value::T::Dict: return v.is_namespace || !v.dict->empty();
    case Value::T::Func: return true;
  }
  return false;
}

namespace {
// Python's repr of a float: the shortest digits that read back, in fixed notation for decimal exponents -4 to 15
// and in scientific notation (e+XX, at least two exponent digits) otherwise.
std::string py_float(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buf[40];
  for (int prec = 0; prec <= 17; ++prec) {  // d.ddd...e+XX with prec digits after the point
    std::snprintf(buf, sizeof buf, "%.*e", prec, f);
    if (std::strtod(buf, nullptr) == f) break;
  }
  std::string s = buf;
  const bool neg = s[0] == '-';
  if (neg) s.erase(0, 1);
  const size_t epos = s.find('e');
  const int exp = std::atoi(s.c_str() + epos + 1);
  std::string digits = s.substr(0, epos);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int n = static_cast<int>(digits.size());
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out.append("0.").append(static_cast<size_t>(-exp - 1), '0').append(digits);
    } else if (n <= exp + 1) {
      out.append(digits).append(static_cast<size_t>(exp + 1 - n), '0').append(".0");
    } else {
      out.append(digits, 0, static_cast<size_t>(exp + 1)).append(".").append(digits, static_cast<size_t>(exp + 1));
    }
  } else {
    out.append(digits, 0, 1);
    if (n > 1) out.append(".").append(digits, 1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += e;
  }
  return out;
}

std::string py_repr_str(const std::string& s) {
  char q = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == q || c == '\\') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out + q;
}

std::string repr(const Value& v) {
  if (v.t == Value::T::Str) return py_repr_str(v.s);
  return to_str(v);
}

// A JSON string as json.dumps writes it; with ensure_ascii, UTF-8 sequences become \uXXXX escapes.
void json_str(std::string& out, const std::string& s, bool ensure_ascii) {
  auto u_escape = [&](uint32_t u) {
    char b[8];
    std::snprintf(b, sizeof b, "\\u%04x", u);
    out += b;
  };
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c == 0x7f)) {
          u_escape(c);
        } else if (c < 0x80 || !ensure_ascii) {
          out += static_cast<char>(c);
        } else {  // a UTF-8 sequence: its code point (a stray byte stays as it is)
          const int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
          uint32_t cp = len == 4 ? c & 0x07u : len == 3 ? c & 0x0Fu : c & 0x1Fu;
          bool ok = len > 1 && i + size_t(len) <= s.size();
          for (int k = 1; ok && k < len; ++k) {
            const unsigned char d = static_cast<unsigned char>(s[i + size_t(k)]);
            ok = (d & 0xC0) == 0x80;
            cp = (cp << 6) | (d & 0x3Fu);
          }
          if (!ok) {
            out += static_cast<char>(c);
            break;
          }
          i += size_t(len - 1);
          if (cp >= 0x10000) {
            u_escape(0xD800 + ((cp - 0x10000) >> 10));
            u_escape(0xDC00 + ((cp - 0x10000) & 0x3FF));
          } else {
            u_escape(cp);
          }
        }
    }
  }
  out += '"';
}

void json_value(std::string& out, const Value& v, const JsonOptions& o, int level) {
  auto nl = [&](int lv) {
    if (!o.indent) return;
    out += '\n';
    for (int k = 0; k < lv; ++k) out += *o.indent;
  };
  switch (v.t) {
    case Value::T::Undefined:
    case Value::T::None: out += "null"; return;
    case Value::T::Bool: out += v.b ? "true" : "false"; return;
    case Value::T::Int: out += std::to_string(v.i); return;
    case Value::T::Float: {
      std::string f = py_float(v.f);
      out += f == "nan" ? "NaN" : f == "inf" ? "Infinity" : f == "-inf" ? "-Infinity" : f;
      return;
    }
    case Value::T::Str: json_str(out, v.s, o.ensure_ascii); return;
    case Value::T::List: {
      if (v.list->empty()) { out += "[]"; return; }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += o.item_sep;
        nl(level + 1);
        json_value(out, (*v.list)[k], o, level + 1);
      }
      nl(level);
      out += ']';
      return;
    }
    case Value::T::Dict: {
      if (v.dict->empty()) { out += "{}"; return; }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : *v.dict) items.push_back(&kv);
      if (o.sort_keys)  // Python orders str keys by code point: UTF-8 byte order
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      bool first = true;
      for (const auto* kv : items) {
        if (!first) out += o.item_sep;
        first = false;
        nl(level + 1);
        json_str(out, kv->first, o.ensure_ascii);
        out += o.key_sep;
        json_value(out, kv->second, o, level + 1);
      }
      nl(level);
      out += '}';
      return;
    }
    case Value::T::Func: fail("chat template: tojson of a function");
  }
}
}  // namespace

std::string to_json(const Value& v, const JsonOptions& o) {
  std::string out;
  json_value(out, v, o, 0);
  return out;
}

std::string to_str(const Value& v) {
  switch (v.t) {
    case Value::T::Undefined: return "";
    case Value::T::None: return "None";
    case Value::T::Bool: return v.b ? "True" : "False";
    case Value::T::Int: return std::to_string(v.i);
    case Value::T::Float: return py_float(v.f);
    case Value::T::Str: return v.s;
    case Value::T::List: {
      std::string s = "[";
      for (size_t k = 0; k < v.list->size(); ++k) s += (k ? ", " : "") + repr((*v.list)[k]);
      return s + "]";
    }
    case Value::T::Dict: {
      if (v.is_namespace) return "<Namespace>";
      std::string s = "{";
      bool first = true;
      for (const auto& [k, x] : *v.dict) {
        s += (first ? "" : ", ") + py_repr_str(k) + ": " + repr(x);
        first = false;
      }
      return s + "}";
    }
    case Value::T::Func: return "<function>";
  }
  return "";
}

namespace {

struct BreakSignal {};
struct ContinueSignal {};

class Renderer {
 public:
  explicit Renderer(const Dict& globals) { scopes_.push_back(globals); }

  void run(const Body& body, std::string& out) {
    for (const NodeP& n : body) exec(*n, out);
  }

 private:
  Value lookup(const std::string& name) {
    for (size_t k = scopes_.size(); k-- > 0;)
      for (const auto& [n, v] : scopes_[k])
        if (n == name) return v;
    if (Value b = builtin_global(name); b.defined()) return b;
    return Value();
  }
  void assign(const std::string& name, Value v) {
    Dict& d = scopes_.back();
    for (auto& [n, old] : d)
      if (n == name) {
        old = std::move(v);
        return;
      }
    d.emplace_back(name, std::move(v));
  }

  void exec(const Node& n, std::string& out) {
    switch (n.k) {
      case Node::K::Text: out += n.text; return;
      case Node::K::Out: out += to_str(eval(*n.expr)); return;
      case Node::K::If:
        for (const auto& [cond, body] : n.branches)
          if (!cond || truthy(eval(*cond))) {
            run(body, out);
            return;
          }
        return;
      case Node::K::For: return exec_for(n, out);
      case Node::K::Set: {
        Value v = eval(*n.expr);
        if (n.attr_set) {
          Value ns = lookup(n.targets[0]);
          if (ns.t != Value::T::Dict || !ns.is_namespace)
            fail("chat template: cannot set attribute '{}' of '{}', which is not a namespace()", n.targets[1], n.targets[0]);
          ns.set(n.targets[1], std::move(v));
        } else if (n.targets.size() == 1) {
          assign(n.targets[0], std::move(v));
        } else {
          unpack(n.targets, v);
        }
        return;
      }
      case Node::K::SetBlock: {
        std::string s;
        run(n.body, s);
        assign(n.targets[0], Value::str(std::move(s)));
        return;
      }
      case Node::K::Macro: {
        const Node* self = &n;
        assign(n.targets[0], Value::func([this, self](Args& args, Kwargs& kwargs) {
                 Dict scope;
                 for (size_t k = 0; k < self->params.size(); ++k) {
                   const auto& [pname, dflt] = self->params[k];
                   Value v;
                   if (k < args.size()) v = args[k];
                   else if (dflt) v = eval(*dflt);
                   for (auto& [kn, kv] : kwargs)
                     if (kn == pname) v = kv;
                   scope.emplace_back(pname, v);
                 }
                 scopes_.push_back(std::move(scope));
                 std::string s;
                 run(self->body, s);
                 scopes_.pop_back();
                 return Value::str(std::move(s));
               }));
        return;
      }
      case Node::K::Break: throw BreakSignal{};
      case Node::K::Continue: throw ContinueSignal{};
    }
  }

  void unpack(const std::vector<std::string>& names, const Value& v) {
    if (v.t != Value::T::List || v.list->size() != names.size())
      fail("chat template: cannot unpack {} into {} names", to_str(v), names.size());
    for (size_t k = 0; k < names.size(); ++k) assign(names[k], (*v.list)[k]);
  }

  void exec_for(const Node& n, std::string& out) {
    Value seq = eval(*n.expr);
    List items;
    if (seq.t == Value::T::List) items = *seq.list;
    else if (seq.t == Value::T::Dict) for (const auto& [k, x] : *seq.dict) items.push_back(Value::str(k));
    else if (seq.t == Value::T::Str) for (char c : seq.s) items.push_back(Value::str(std::string(1, c)));
    else if (seq.t == Value::T::Undefined || seq.t == Value::T::None) items.clear();
    else fail("chat template: cannot iterate over {}", to_str(seq));
    scopes_.emplace_back();
    if (n.filter) {
      List kept;
      for (const Value& it : items) {
        bind(n.targets, it);
        if (truthy(eval(*n.filter))) kept.push_back(it);
      }
      items.swap(kept);
    }
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < len; ++k) {
      bind(n.targets, items[static_cast<size_t>(k)]);
      Value loop = Value::make_dict({{"index", Value::integer(k + 1)},
                                     {"index0", Value::integer(k)},
                                     {"revindex", Value::integer(len - k)},
                                     {"revindex0", Value::integer(len - k - 1)},
                                     {"first", Value::boolean(k == 0)},
                                     {"last", Value::boolean(k == len - 1)},
                                     {"length", Value::integer(len)},
                                     {"previtem", k > 0 ? items[static_cast<size_t>(k - 1)] : Value()},
                                     {"nextitem", k + 1 < len ? items[static_cast<size_t>(k + 1)] : Value()},
                                     {"cycle", Value::func([k](Args& a, Kwargs&) {
                                        if (a.empty()) fail("chat template: loop.cycle() needs items to cycle through");
                                        return a[static_cast<size_t>(k) % a.size()];
                                      })}});
      assign("loop", loop);
      try {
        run(n.body, out);
      } catch (const BreakSignal&) {
        break;
      } catch (const ContinueSignal&) {
      }
    }
    scopes_.pop_back();
    if (len == 0) run(n.else_body, out);
  }

  void bind(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) assign(targets[0], v);
    else unpack(targets, v);
  }

  Value eval(const Expr& e) {
    switch (e.k) {
      case Expr::K::Lit: return e.lit;
      case Expr::K::Name: return lookup(e.name);
      case Expr::K::Attr: {
        Value obj = eval(*e.a);
        if (obj.t == Value::T::Undefined) fail("chat template: '{}' of an undefined value", e.name);
        if (const Value* x = obj.get(e.name)) return *x;
        return Value();
      }
      case Expr::K::Item: return get_item(eval(*e.a), eval(*e.b));
      case Expr::K::Slice: {
        Value obj = eval(*e.a);
        auto opt = [&](const ExprP& x) -> std::optional<int64_t> {
          if (!x) return std::nullopt;
          Value v = eval(*x);
          if (v.t == Value::T::None) return std::nullopt;
          if (v.t != Value::T::Int) fail("chat template: slice index {} is not an integer", to_str(v));
          return v.i;
        };
        return slice(obj, opt(e.b), opt(e.c), opt(e.d));
      }
      case Expr::K::Call: return call(e);
      case Expr::K::Filter: {
        Value v = eval(*e.a);
        Args args;
        for (const auto& a : e.args) args.push_back(eval(*a));
        Kwargs kw;
        for (const auto& [k, a] : e.kwargs) kw.emplace_back(k, eval(*a));
        return apply_filter(e.name, v, args, kw);
      }
      case Expr::K::Test: {
        Value v = eval(*e.a);
        Args args;
        for (const auto& a : e.args) args.push_back(eval(*a));
        bool r = apply_test(e.name, v, args);
        return Value::boolean(e.negated ? !r : r);
      }
      case Expr::K::Bin: {
        if (e.name == "and") {
          Value l = eval(*e.a);
          return truthy(l) ? eval(*e.b) : l;
        }
        if (e.name == "or") {
          Value l = eval(*e.a);
          return truthy(l) ? l : eval(*e.b);
        }
        return binary(e.name, eval(*e.a), eval(*e.b));
      }
      case Expr::K::Unary: {
        Value v = eval(*e.a);
        if (e.name == "not") return Value::boolean(!truthy(v));
        if (v.t == Value::T::Int) return Value::integer(e.name == "-" ? -v.i : v.i);
        if (v.t == Value::T::Float) return Value::real(e.name == "-" ? -v.f : v.f);
        fail("chat template: unary {} of {}", e.name, to_str(v));
      }
      case Expr::K::Cond: {
        if (truthy(eval(*e.b))) return eval(*e.a);
        return e.c ? eval(*e.c) : Value();
      }
      case Expr::K::ListLit: {
        List l;
        for (const auto& a : e.args) l.push_back(eval(*a));
        return Value::make_list(std::move(l));
      }
      case Expr::K::DictLit: {
        Value d = Value::make_dict();
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          Value key = eval(*e.args[k]);
          if (key.t != Value::T::Str) fail("chat template: dict keys must be strings, got {}", to_str(key));
          d.set(key.s, eval(*e.args[k + 1]));
        }
        return d;
      }
    }
    return Value();
  }

  Value call(const Expr& e) {
    Args args;
    for (const auto& a : e.args) args.push_back(eval(*a));
    Kwargs kw;
    for (const auto& [k, a] : e.kwargs) kw.emplace_back(k, eval(*a));
    if (e.a->k == Expr::K::Attr) {  // a method of a string, list or dict
      Value obj = eval(*e.a->a);
      if (obj.t == Value::T::Str || obj.t == Value::T::List || (obj.t == Value::T::Dict && !obj.get(e.a->name)))
        return call_method(obj, e.a->name, args, kw);
    }
    Value f = eval(*e.a);
    if (f.t != Value::T::Func) {
      if (e.a->k == Expr::K::Name) fail("chat template: unknown function '{}'", e.a->name);
      fail("chat template: {} is not callable", to_str(f));
    }
    return (*f.fn)(args, kw);
  }

  std::vector<Dict> scopes_;
};

}  // namespace

std::string render(const Body& program, const Dict& globals) {
  Renderer r(globals);
  std::string out;
  try {
    r.run(program, out);
  } catch (const BreakSignal&) {
    fail("chat template: {{% break %}} outside a loop");
  } catch (const ContinueSignal&) {
    fail("chat template: {{% continue %}} outside a loop");
  }
  return out;
}

}  // namespace kiln::tok::jinja
