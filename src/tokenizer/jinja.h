// The Jinja subset behind chat templates (internal): values, the syntax tree, parse and render.
// chat_template.h lists what is supported.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kiln::tok::jinja {

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion-ordered, as Python dicts
using Args = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;
using Func = std::function<Value(Args&, Kwargs&)>;

struct Value {
  enum class T { Undefined, None, Bool, Int, Float, Str, List, Dict, Func } t = T::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;  // also a namespace() (shared, so `set ns.x` is seen by every holder)
  std::shared_ptr<Func> fn;
  bool is_namespace = false;

  static Value none() { Value v; v.t = T::None; return v; }
  static Value boolean(bool x) { Value v; v.t = T::Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.t = T::Int; v.i = x; return v; }
  static Value real(double x) { Value v; v.t = T::Float; v.f = x; return v; }
  static Value str(std::string x) { Value v; v.t = T::Str; v.s = std::move(x); return v; }
  static Value make_list(List l = {}) { Value v; v.t = T::List; v.list = std::make_shared<List>(std::move(l)); return v; }
  static Value make_dict(Dict d = {}) { Value v; v.t = T::Dict; v.dict = std::make_shared<Dict>(std::move(d)); return v; }
  static Value func(Func f) { Value v; v.t = T::Func; v.fn = std::make_shared<Func>(std::move(f)); return v; }

  bool defined() const { return t != T::Undefined; }
  const Value* get(const std::string& key) const {  // dict item
    if (t != T::Dict) return nullptr;
    for (const auto& [k, v] : *dict)
      if (k == key) return &v;
    return nullptr;
  }
  void set(const std::string& key, Value v) {
    for (auto& [k, old] : *dict)
      if (k == key) {
        old = std::move(v);
        return;
      }
    dict->emplace_back(key, std::move(v));
  }
};

// ---- syntax tree ----
struct Expr;
using ExprP = std::shared_ptr<Expr>;
struct Expr {
  enum class K { Lit, Name, Attr, Item, Slice, Call, Filter, Test, Bin, Unary, Cond, ListLit, DictLit } k;
  Value lit;
  std::string name;  // Name, Attr, Filter, Test, Bin/Unary operator
  ExprP a, b, c, d;  // operands (Slice: obj, start, stop, step; Cond: then, cond, else)
  std::vector<ExprP> args;
  std::vector<std::pair<std::string, ExprP>> kwargs;
  bool negated = false;  // Test: `is not`
};

struct Node;
using NodeP = std::shared_ptr<Node>;
using Body = std::vector<NodeP>;
struct Node {
  enum class K { Text, Out, If, For, Set, SetBlock, Macro, Break, Continue } k;
  std::string text;                             // Text
  ExprP expr;                                   // Out; Set value; For iterable
  std::vector<std::pair<ExprP, Body>> branches;  // If: (condition or null for else, body)
  std::vector<std::string> targets;             // For/Set names; Set "ns.attr" as {"ns", "attr"} with attr_set
  bool attr_set = false;
  ExprP filter;                                 // For: `if` condition
  Body body, else_body;                         // For, SetBlock, Macro
  std::vector<std::pair<std::string, ExprP>> params;  // Macro (name, default or null)
};

Body parse(const std::string& source);  // throws kiln::Error naming the unsupported construct or syntax error
std::string render(const Body& program, const Dict& globals);

// json.dumps options (transformers' tojson filter passes these through).
struct JsonOptions {
  std::optional<std::string> indent;         // none: one line; "" (indent 0 or less): newlines without indentation
  std::string item_sep = ", ", key_sep = ": ";  // separators (json.dumps uses "," as item_sep with an indent)
  bool sort_keys = false;
  bool ensure_ascii = false;  // non-ASCII characters as \uXXXX escapes (surrogate pairs above U+FFFF)
};

// Python's str() of a value, and json.dumps(value, ...) with the options.
std::string to_str(const Value& v);
std::string to_json(const Value& v, const JsonOptions& o);
bool truthy(const Value& v);

}  // namespace kiln::tok::jinja
