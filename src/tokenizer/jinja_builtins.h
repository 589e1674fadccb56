// Jinja built-ins (internal): operators, item access and slices, filters, tests, methods and global functions.
#pragma once
#include <optional>
#include <string>

#include "tokenizer/jinja.h"

namespace kiln::tok::jinja {

Value builtin_global(const std::string& name);  // raise_exception, namespace, range, dict, strftime_now
Value apply_filter(const std::string& name, const Value& v, Args& args, Kwargs& kwargs);
bool apply_test(const std::string& name, const Value& v, Args& args);
Value call_method(const Value& obj, const std::string& name, Args& args, Kwargs& kwargs);
Value get_item(const Value& obj, const Value& key);
Value slice(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop, std::optional<int64_t> step);
Value binary(const std::string& op, const Value& l, const Value& r);
bool equal(const Value& a, const Value& b);

}  // namespace kiln::tok::jinja
