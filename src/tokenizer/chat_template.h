// A small Jinja interpreter, enough for the chat templates of the Llama-3, Qwen2.5/Qwen3 and Mistral
// families (and most others), rendering as jinja2 does in transformers' environment (checked against jinja2's
// renderings: tests/data/tokenizers/chat_templates.json, scripts/dev/render_chat_templates.py): {% for %}
// (loop.index, index0, first, last, length, revindex(0), previtem, nextitem, cycle; else; a filter condition),
// {% if/elif/else %}, {% set %} (also ns.attr and block set), {% macro %}, {% break/continue %},
// {% generation %}, {# #}, whitespace control (-, +), trim_blocks and lstrip_blocks as transformers sets them
// (one trailing newline of the template dropped); expressions with literals, lists, dicts, attribute and item
// access, slices, the Python operators, `~`, `in`, `is` tests, conditional expressions, filters (trim, length,
// tojson with transformers' options, upper, lower, default, join, first, last, list, selectattr, rejectattr, map,
// items, replace, ...) and string/dict methods; the functions raise_exception, namespace, range and strftime_now.
//
// Anything outside that subset is a kiln::Error naming it; raise_exception(msg) is a kiln::Error with msg.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace kiln::tok {

// Renders `source` with the variables of `context` (a JSON object).
std::string render_chat_template(const std::string& source, const nlohmann::json& context);

}  // namespace kiln::tok
