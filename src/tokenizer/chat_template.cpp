#include "tokenizer/chat_template.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/jinja.h"

namespace kiln::tok {
namespace {

jinja::Value from_json(const nlohmann::json& j) {
  using jinja::Value;
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return Value::integer(j.get<int64_t>());
    case nlohmann::json::value_t::number_float: return Value::real(j.get<double>());
    case nlohmann::json::value_t::string: return Value::str(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      jinja::List l;
      for (const auto& e : j) l.push_back(from_json(e));
      return Value::make_list(std::move(l));
    }
    case nlohmann::json::value_t::object: {
      jinja::Dict d;
      for (auto it = j.begin(); it != j.end(); ++it) d.emplace_back(it.key(), from_json(it.value()));
      return Value::make_dict(std::move(d));
    }
    default: return Value();
  }
}

}  // namespace

std::string render_chat_template(const std::string& source, const nlohmann::json& context) {
  if (!context.is_object()) fail("chat template context must be a JSON object");
  jinja::Body program = jinja::parse(source);
  jinja::Dict globals;
  for (auto it = context.begin(); it != context.end(); ++it) globals.emplace_back(it.key(), from_json(it.value()));
  return jinja::render(program, globals);
}

}  // namespace kiln::tok
