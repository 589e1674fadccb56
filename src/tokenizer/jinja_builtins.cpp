#include "tokenizer/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "core/error.h"

namespace kiln::tok::jinja {
namespace {

using T = Value::T;

bool is_num(const Value& v) { return v.t == T::Int || v.t == T::Float || v.t == T::Bool; }
double num(const Value& v) { return v.t == T::Float ? v.f : v.t == T::Int ? static_cast<double>(v.i) : v.b; }
int64_t inum(const Value& v) { return v.t == T::Int ? v.i : v.t == T::Bool ? v.b : static_cast<int64_t>(v.f); }

const Value* kwarg(Kwargs& kw, const char* name) {
  for (auto& [k, v] : kw)
    if (k == name) return &v;
  return nullptr;
}
Value arg(Args& a, Kwargs& kw, size_t i, const char* name, Value dflt = Value()) {
  if (i < a.size()) return a[i];
  if (const Value* v = kwarg(kw, name)) return *v;
  return dflt;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  auto in_set = [&](char c) { return chars.t == T::Str ? chars.s.find(c) != std::string::npos : is_space(c); };
  size_t b = 0, e = s.size();
  if (left) while (b < e && in_set(s[b])) ++b;
  if (right) while (e > b && in_set(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string title(const std::string& s) {
  std::string o;
  bool start = true;
  for (char c : s) {
    bool alpha = std::isalpha(static_cast<unsigned char>(c));
    o += static_cast<char>(alpha ? (start ? std::toupper(c) : std::tolower(c)) : c);
    start = !alpha;
  }
  return o;
}
std::string replace(const std::string& s, const std::string& a, const std::string& b, int64_t count = -1) {
  if (a.empty()) return s;
  std::string o;
  size_t pos = 0;
  for (size_t i = s.find(a); i != std::string::npos && count != 0; i = s.find(a, pos), --count) {
    o.append(s, pos, i - pos);
    o += b;
    pos = i + a.size();
  }
  return o + s.substr(pos);
}

Value split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.t != T::Str) {  // whitespace runs
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && is_space(s[i])) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        out.push_back(Value::str(strip(s.substr(i), Value(), false, true)));
        break;
      }
      size_t b = i;
      while (i < s.size() && !is_space(s[i])) ++i;
      out.push_back(Value::str(s.substr(b, i - b)));
    }
    return Value::make_list(std::move(out));
  }
  if (sep.s.empty()) fail("chat template: split() with an empty separator");
  size_t pos = 0;
  while (true) {
    size_t i = s.find(sep.s, pos);
    if (i == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) break;
    out.push_back(Value::str(s.substr(pos, i - pos)));
    pos = i + sep.s.size();
  }
  out.push_back(Value::str(s.substr(pos)));
  return Value::make_list(std::move(out));
}

int64_t length(const Value& v) {
  switch (v.t) {
    case T::Str: {
      int64_t n = 0;  // characters, not bytes
      for (unsigned char c : v.s) n += (c & 0xC0) != 0x80;
      return n;
    }
    case T::List: return static_cast<int64_t>(v.list->size());
    case T::Dict: return static_cast<int64_t>(v.dict->size());
    case T::Undefined: return 0;
    default: fail("chat template: length of {}", to_str(v));
  }
}

List as_list(const Value& v) {
  if (v.t == T::List) return *v.list;
  List l;
  if (v.t == T::Dict) for (const auto& [k, x] : *v.dict) l.push_back(Value::str(k));
  else if (v.t == T::Str) for (char c : v.s) l.push_back(Value::str(std::string(1, c)));
  else if (v.t != T::Undefined && v.t != T::None) fail("chat template: {} is not iterable", to_str(v));
  return l;
}

Value attr_of(const Value& v, const std::string& path) {
  Value cur = v;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    const Value* x = cur.get(part);
    cur = x ? *x : Value();
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return cur;
}

int cmp(const Value& a, const Value& b) {
  if (is_num(a) && is_num(b)) return num(a) < num(b) ? -1 : num(a) > num(b) ? 1 : 0;
  if (a.t == T::Str && b.t == T::Str) return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
  fail("chat template: cannot compare {} and {}", to_str(a), to_str(b));
}

}  // namespace

bool equal(const Value& a, const Value& b) {
  if (is_num(a) && is_num(b)) return num(a) == num(b);
  if (a.t != b.t) return false;
  switch (a.t) {
    case T::Undefined:
    case T::None: return true;
    case T::Str: return a.s == b.s;
    case T::List:
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!equal((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case T::Dict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [k, x] : *a.dict) {
        const Value* y = b.get(k);
        if (!y || !equal(x, *y)) return false;
      }
      return true;
    default: return a.fn == b.fn;
  }
}

Value builtin_global(const std::string& name) {
  if (name == "raise_exception")
    return Value::func([](Args& a, Kwargs&) -> Value {
      fail("chat template raised an exception: {}", a.empty() ? std::string() : to_str(a[0]));
    });
  if (name == "namespace" || name == "dict")
    return Value::func([name](Args& a, Kwargs& kw) {
      Value d = Value::make_dict();
      d.is_namespace = name == "namespace";
      if (!a.empty() && a[0].t == T::Dict) *d.dict = *a[0].dict;
      for (auto& [k, v] : kw) d.set(k, v);
      return d;
    });
  if (name == "range")
    return Value::func([](Args& a, Kwargs&) {
      int64_t start = 0, stop = 0, step = 1;
      if (a.size() == 1) stop = inum(a[0]);
      else if (a.size() >= 2) start = inum(a[0]), stop = inum(a[1]);
      if (a.size() >= 3) step = inum(a[2]);
      if (step == 0) fail("chat template: range() step must not be zero");
      List l;
      for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) l.push_back(Value::integer(k));
      return Value::make_list(std::move(l));
    });
  if (name == "strftime_now")
    return Value::func([](Args& a, Kwargs&) {
      std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof buf, a.empty() ? "%Y-%m-%d" : to_str(a[0]).c_str(), &tm);
      return Value::str(std::string(buf, n));
    });
  return Value();
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.t == T::Dict) {
    if (key.t == T::Str) {
      const Value* x = obj.get(key.s);
      return x ? *x : Value();
    }
    return Value();
  }
  if ((obj.t == T::List || obj.t == T::Str) && (key.t == T::Int || key.t == T::Bool)) {
    int64_t n = obj.t == T::List ? static_cast<int64_t>(obj.list->size()) : static_cast<int64_t>(obj.s.size());
    int64_t k = inum(key);
    if (k < 0) k += n;
    if (k < 0 || k >= n) return Value();
    return obj.t == T::List ? (*obj.list)[static_cast<size_t>(k)] : Value::str(std::string(1, obj.s[static_cast<size_t>(k)]));
  }
  if (obj.t == T::Undefined) fail("chat template: item {} of an undefined value", to_str(key));
  return Value();
}

Value slice(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop, std::optional<int64_t> step) {
  int64_t st = step.value_or(1);
  if (st == 0) fail("chat template: slice step must not be zero");
  int64_t n;
  if (obj.t == T::List) n = static_cast<int64_t>(obj.list->size());
  else if (obj.t == T::Str) n = static_cast<int64_t>(obj.s.size());
  else fail("chat template: cannot slice {}", to_str(obj));
  auto norm = [&](std::optional<int64_t> x, int64_t dflt) {
    if (!x) return dflt;
    int64_t v = *x < 0 ? *x + n : *x;
    if (st > 0) return std::clamp<int64_t>(v, 0, n);
    return std::clamp<int64_t>(v, -1, n - 1);
  };
  int64_t b = norm(start, st > 0 ? 0 : n - 1), e = norm(stop, st > 0 ? n : -1);
  List l;
  std::string s;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) {
    if (obj.t == T::List) l.push_back((*obj.list)[static_cast<size_t>(k)]);
    else s += obj.s[static_cast<size_t>(k)];
  }
  return obj.t == T::List ? Value::make_list(std::move(l)) : Value::str(std::move(s));
}

Value binary(const std::string& op, const Value& l, const Value& r) {
  if (op == "==") return Value::boolean(equal(l, r));
  if (op == "!=") return Value::boolean(!equal(l, r));
  if (op == "<") return Value::boolean(cmp(l, r) < 0);
  if (op == ">") return Value::boolean(cmp(l, r) > 0);
  if (op == "<=") return Value::boolean(cmp(l, r) <= 0);
  if (op == ">=") return Value::boolean(cmp(l, r) >= 0);
  if (op == "~") return Value::str(to_str(l) + to_str(r));
  if (op == "in" || op == "not in") {
    bool found = false;
    if (r.t == T::Str && l.t == T::Str) found = r.s.find(l.s) != std::string::npos;
    else if (r.t == T::List) found = std::any_of(r.list->begin(), r.list->end(), [&](const Value& x) { return equal(x, l); });
    else if (r.t == T::Dict) found = l.t == T::Str && r.get(l.s);
    else if (r.t == T::Undefined || r.t == T::None) fail("chat template: 'in' of {}", r.t == T::None ? "None" : "an undefined value");
    else fail("chat template: 'in' of {}", to_str(r));
    return Value::boolean(op == "in" ? found : !found);
  }
  if (op == "+") {
    if (l.t == T::Str && r.t == T::Str) return Value::str(l.s + r.s);
    if (l.t == T::List && r.t == T::List) {
      List x = *l.list;
      x.insert(x.end(), r.list->begin(), r.list->end());
      return Value::make_list(std::move(x));
    }
  }
  if (op == "*") {
    if (l.t == T::Str && r.t == T::Int) {
      std::string s;
      for (int64_t k = 0; k < r.i; ++k) s += l.s;
      return Value::str(s);
    }
  }
  if (is_num(l) && is_num(r)) {
    bool ints = l.t != T::Float && r.t != T::Float;
    if (op == "+") return ints ? Value::integer(inum(l) + inum(r)) : Value::real(num(l) + num(r));
    if (op == "-") return ints ? Value::integer(inum(l) - inum(r)) : Value::real(num(l) - num(r));
    if (op == "*") return ints ? Value::integer(inum(l) * inum(r)) : Value::real(num(l) * num(r));
    if (op == "/") {
      if (num(r) == 0) fail("chat template: division by zero");
      return Value::real(num(l) / num(r));
    }
    if (op == "//" || op == "%") {
      if (num(r) == 0) fail("chat template: division by zero");
      if (ints) {
        int64_t a = inum(l), b = inum(r), q = a / b, m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) --q, m += b;  // Python floors
        return Value::integer(op == "//" ? q : m);
      }
      double q = std::floor(num(l) / num(r));
      return Value::real(op == "//" ? q : num(l) - q * num(r));
    }
    if (op == "**") return ints && inum(r) >= 0 ? Value::integer(static_cast<int64_t>(std::pow(num(l), num(r))))
                                                : Value::real(std::pow(num(l), num(r)));
  }
  fail("chat template: unsupported operation {} {} {}", to_str(l), op, to_str(r));
}

bool apply_test(const std::string& name, const Value& v, Args& a) {
  if (name == "defined") return v.defined();
  if (name == "undefined") return !v.defined();
  if (name == "none") return v.t == T::None;
  if (name == "string") return v.t == T::Str;
  if (name == "number") return v.t == T::Int || v.t == T::Float;
  if (name == "integer") return v.t == T::Int;
  if (name == "float") return v.t == T::Float;
  if (name == "boolean") return v.t == T::Bool;
  if (name == "true") return v.t == T::Bool && v.b;
  if (name == "false") return v.t == T::Bool && !v.b;
  if (name == "mapping") return v.t == T::Dict;
  if (name == "sequence") return v.t == T::List || v.t == T::Str || v.t == T::Dict;
  if (name == "iterable") return v.t == T::List || v.t == T::Str || v.t == T::Dict;
  if (name == "callable") return v.t == T::Func;
  if (name == "odd" || name == "even") {
    if (v.t != T::Int) fail("chat template: test '{}' of {}", name, to_str(v));
    return (v.i % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") return !a.empty() && inum(a[0]) != 0 && inum(v) % inum(a[0]) == 0;
  if (name == "lower") return v.t == T::Str && lower(v.s) == v.s;
  if (name == "upper") return v.t == T::Str && upper(v.s) == v.s;
  if (a.empty()) fail("chat template: unsupported test '{}'", name);
  if (name == "equalto" || name == "eq" || name == "sameas" || name == "==") return equal(v, a[0]);
  if (name == "ne" || name == "!=") return !equal(v, a[0]);
  if (name == "in") return truthy(binary("in", v, a[0]));
  if (name == "gt" || name == ">") return truthy(binary(">", v, a[0]));
  if (name == "ge" || name == ">=") return truthy(binary(">=", v, a[0]));
  if (name == "lt" || name == "<") return truthy(binary("<", v, a[0]));
  if (name == "le" || name == "<=") return truthy(binary("<=", v, a[0]));
  fail("chat template: unsupported test '{}'", name);
}

Value apply_filter(const std::string& name, const Value& v, Args& a, Kwargs& kw) {
  if (name == "trim") return Value::str(strip(to_str(v), arg(a, kw, 0, "chars"), true, true));
  if (name == "length" || name == "count") return Value::integer(length(v));
  // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False): json.dumps
  if (name == "tojson") {
    JsonOptions o;
    o.ensure_ascii = truthy(arg(a, kw, 0, "ensure_ascii", Value::boolean(false)));
    const Value ind = arg(a, kw, 1, "indent");
    if (ind.t == T::Int || ind.t == T::Bool) o.indent = std::string(size_t(std::max<int64_t>(inum(ind), 0)), ' ');
    else if (ind.t == T::Str) o.indent = ind.s;
    else if (ind.defined() && ind.t != T::None) fail("chat template: tojson indent {}", to_str(ind));
    if (o.indent) o.item_sep = ",";
    const Value sep = arg(a, kw, 2, "separators");
    if (sep.t == T::List && sep.list->size() == 2) {
      o.item_sep = to_str((*sep.list)[0]);
      o.key_sep = to_str((*sep.list)[1]);
    } else if (sep.defined() && sep.t != T::None) {
      fail("chat template: tojson separators {} (expected two strings)", to_str(sep));
    }
    o.sort_keys = truthy(arg(a, kw, 3, "sort_keys", Value::boolean(false)));
    return Value::str(to_json(v, o));
  }
  if (name == "string") return Value::str(to_str(v));
  if (name == "upper") return Value::str(upper(to_str(v)));
  if (name == "lower") return Value::str(lower(to_str(v)));
  if (name == "title") return Value::str(title(to_str(v)));
  if (name == "capitalize") {
    std::string s = lower(to_str(v));
    if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
    return Value::str(s);
  }
  if (name == "safe" || name == "e" || name == "escape") {
    if (name == "safe") return v;
    std::string s = to_str(v), o;
    for (char c : s) {
      if (c == '&') o += "&amp;";
      else if (c == '<') o += "&lt;";
      else if (c == '>') o += "&gt;";
      else if (c == '"') o += "&#34;";
      else if (c == '\'') o += "&#39;";
      else o += c;
    }
    return Value::str(o);
  }
  if (name == "default" || name == "d") {
    bool boolean = truthy(arg(a, kw, 1, "boolean", Value::boolean(false)));
    if (!v.defined() || (boolean && !truthy(v))) return arg(a, kw, 0, "default_value", Value::str(""));
    return v;
  }
  if (name == "int") {
    if (v.t == T::Str) {
      try { return Value::integer(std::stoll(v.s)); } catch (...) { return arg(a, kw, 0, "default", Value::integer(0)); }
    }
    return is_num(v) ? Value::integer(inum(v)) : Value::integer(0);
  }
  if (name == "float") {
    if (v.t == T::Str) {
      try { return Value::real(std::stod(v.s)); } catch (...) { return Value::real(0); }
    }
    return is_num(v) ? Value::real(num(v)) : Value::real(0);
  }
  if (name == "abs") return v.t == T::Int ? Value::integer(std::llabs(v.i)) : Value::real(std::fabs(num(v)));
  if (name == "replace") {
    Value c = arg(a, kw, 2, "count");
    return Value::str(replace(to_str(v), to_str(arg(a, kw, 0, "old")), to_str(arg(a, kw, 1, "new")),
                              c.t == T::Int ? c.i : -1));
  }
  if (name == "first" || name == "last") {
    List l = as_list(v);
    if (l.empty()) return Value();
    return name == "first" ? l.front() : l.back();
  }
  if (name == "list") return Value::make_list(as_list(v));
  if (name == "reverse") {
    if (v.t == T::Str) return Value::str(std::string(v.s.rbegin(), v.s.rend()));
    List l = as_list(v);
    std::reverse(l.begin(), l.end());
    return Value::make_list(std::move(l));
  }
  if (name == "join") {
    std::string sep = to_str(arg(a, kw, 0, "d", Value::str(""))), out;
    Value attr = arg(a, kw, 1, "attribute");
    bool first = true;
    for (const Value& x : as_list(v)) {
      out += (first ? "" : sep) + to_str(attr.t == T::Str ? attr_of(x, attr.s) : x);
      first = false;
    }
    return Value::str(out);
  }
  if (name == "items") {
    List l;
    if (v.t == T::Dict)
      for (const auto& [k, x] : *v.dict) l.push_back(Value::make_list({Value::str(k), x}));
    return Value::make_list(std::move(l));
  }
  if (name == "selectattr" || name == "rejectattr") {
    if (a.empty()) fail("chat template: {} needs an attribute name", name);
    std::string attr = to_str(a[0]);
    List out;
    for (const Value& x : as_list(v)) {
      Value av = attr_of(x, attr);
      bool ok;
      if (a.size() >= 2) {
        Args targs(a.begin() + 2, a.end());
        ok = apply_test(to_str(a[1]), av, targs);
      } else {
        ok = truthy(av);
      }
      if (ok == (name == "selectattr")) out.push_back(x);
    }
    return Value::make_list(std::move(out));
  }
  if (name == "select" || name == "reject") {
    List out;
    for (const Value& x : as_list(v)) {
      bool ok;
      if (!a.empty()) {
        Args targs(a.begin() + 1, a.end());
        ok = apply_test(to_str(a[0]), x, targs);
      } else {
        ok = truthy(x);
      }
      if (ok == (name == "select")) out.push_back(x);
    }
    return Value::make_list(std::move(out));
  }
  if (name == "map") {
    List out;
    const Value* attr = kwarg(kw, "attribute");
    for (const Value& x : as_list(v)) {
      if (attr) {
        Value r = attr_of(x, to_str(*attr));
        if (!r.defined())
          if (const Value* d = kwarg(kw, "default")) r = *d;
        out.push_back(r);
      } else if (!a.empty()) {
        Args fa(a.begin() + 1, a.end());
        Kwargs none;
        out.push_back(apply_filter(to_str(a[0]), x, fa, none));
      } else {
        fail("chat template: map needs attribute= or a filter name");
      }
    }
    return Value::make_list(std::move(out));
  }
  if (name == "unique") {
    List out;
    for (const Value& x : as_list(v))
      if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equal(x, y); })) out.push_back(x);
    return Value::make_list(std::move(out));
  }
  if (name == "sort") {
    List l = as_list(v);
    Value attr = arg(a, kw, 2, "attribute");
    bool rev = truthy(arg(a, kw, 0, "reverse"));
    std::stable_sort(l.begin(), l.end(), [&](const Value& x, const Value& y) {
      const Value& xa = attr.t == T::Str ? attr_of(x, attr.s) : x;
      const Value& ya = attr.t == T::Str ? attr_of(y, attr.s) : y;
      return rev ? cmp(ya, xa) < 0 : cmp(xa, ya) < 0;
    });
    return Value::make_list(std::move(l));
  }
  if (name == "indent") {
    int64_t w = inum(arg(a, kw, 0, "width", Value::integer(4)));
    bool first = truthy(arg(a, kw, 1, "first"));
    std::string pad(static_cast<size_t>(std::max<int64_t>(w, 0)), ' '), s = to_str(v), o;
    for (size_t k = 0; k < s.size(); ++k) {
      o += s[k];
      if (s[k] == '\n' && k + 1 < s.size() && s[k + 1] != '\n') o += pad;
    }
    return Value::str(first ? pad + o : o);
  }
  fail("chat template: unsupported filter '{}'", name);
}

Value call_method(const Value& obj, const std::string& name, Args& a, Kwargs& kw) {
  if (obj.t == T::Str) {
    const std::string& s = obj.s;
    if (name == "startswith" || name == "endswith") {
      Value p = arg(a, kw, 0, "prefix");
      List cands = p.t == T::List ? *p.list : List{p};
      for (const Value& c : cands) {
        std::string x = to_str(c);
        if (name == "startswith" ? s.rfind(x, 0) == 0 : (s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0))
          return Value::boolean(true);
      }
      return Value::boolean(false);
    }
    if (name == "strip") return Value::str(strip(s, arg(a, kw, 0, "chars"), true, true));
    if (name == "lstrip") return Value::str(strip(s, arg(a, kw, 0, "chars"), true, false));
    if (name == "rstrip") return Value::str(strip(s, arg(a, kw, 0, "chars"), false, true));
    if (name == "split") {
      Value m = arg(a, kw, 1, "maxsplit");
      return split(s, arg(a, kw, 0, "sep"), m.t == T::Int ? m.i : -1);
    }
    if (name == "upper") return Value::str(upper(s));
    if (name == "lower") return Value::str(lower(s));
    if (name == "title") return Value::str(title(s));
    if (name == "capitalize") {
      std::string x = lower(s);
      if (!x.empty()) x[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(x[0])));
      return Value::str(x);
    }
    if (name == "replace") {
      Value c = arg(a, kw, 2, "count");
      return Value::str(replace(s, to_str(arg(a, kw, 0, "old")), to_str(arg(a, kw, 1, "new")), c.t == T::Int ? c.i : -1));
    }
    if (name == "find") {
      size_t p = s.find(to_str(arg(a, kw, 0, "sub")));
      return Value::integer(p == std::string::npos ? -1 : static_cast<int64_t>(p));
    }
    if (name == "count") {
      std::string x = to_str(arg(a, kw, 0, "sub"));
      int64_t n = 0;
      if (!x.empty())
        for (size_t p = s.find(x); p != std::string::npos; p = s.find(x, p + x.size())) ++n;
      return Value::integer(n);
    }
    if (name == "join") {
      std::string o;
      bool first = true;
      for (const Value& x : as_list(arg(a, kw, 0, "iterable"))) {
        o += (first ? "" : s) + to_str(x);
        first = false;
      }
      return Value::str(o);
    }
    if (name == "isdigit")
      return Value::boolean(!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }));
  } else if (obj.t == T::Dict) {
    if (name == "items") return apply_filter("items", obj, a, kw);
    if (name == "keys") return Value::make_list(as_list(obj));
    if (name == "values") {
      List l;
      for (const auto& [k, x] : *obj.dict) l.push_back(x);
      return Value::make_list(std::move(l));
    }
    if (name == "get") {
      Value k = arg(a, kw, 0, "key");
      const Value* x = k.t == T::Str ? obj.get(k.s) : nullptr;
      return x ? *x : arg(a, kw, 1, "default", Value::none());
    }
  } else if (obj.t == T::List) {
    if (name == "index") {
      Value x = arg(a, kw, 0, "value");
      for (size_t k = 0; k < obj.list->size(); ++k)
        if (equal((*obj.list)[k], x)) return Value::integer(static_cast<int64_t>(k));
      fail("chat template: {} is not in the list", to_str(x));
    }
  }
  fail("chat template: unsupported method '{}' of {}", name, obj.t == T::Str ? "a string" : obj.t == T::List ? "a list" : "a dict");
}

}  // namespace kiln::tok::jinja
