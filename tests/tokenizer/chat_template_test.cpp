// Chat templates: Llama-3, Qwen and Mistral style templates rendered against renderings derived by hand
// (tests/data/tokenizers/chat_templates.json), Jinja semantics one by one, and errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tok_test_util.h"
#include "tokenizer/chat_template.h"

namespace kiln {
namespace {

nlohmann::json context_of(const nlohmann::json& c) {
  nlohmann::json ctx = nlohmann::json::object();
  for (const char* k : {"bos_token", "eos_token"})
    if (c.contains(k)) ctx[k] = c[k];
  ctx["messages"] = c["messages"];
  ctx["add_generation_prompt"] = c["add_generation_prompt"];
  ctx["tools"] = nullptr;  // as transformers passes it
  return ctx;
}

const nlohmann::json& data() {
  static const nlohmann::json j = testing::read_json_file(testing::source_path("tests/data/tokenizers/chat_templates.json"));
  return j;
}

std::string render(const std::string& tmpl, nlohmann::json ctx = nlohmann::json::object()) {
  return tok::render_chat_template(tmpl, ctx);
}

TEST(ChatTemplate, FamiliesRenderAsDerivedByHand) {
  ASSERT_GE(data()["cases"].size(), 9u);
  for (const auto& c : data()["cases"]) {
    EXPECT_EQ(tok::render_chat_template(c["template"], context_of(c)), c["expected"].get<std::string>()) << c["name"];
  }
}

TEST(ChatTemplate, RaiseExceptionIsAnErrorWithItsMessage) {
  for (const auto& c : data()["errors"]) {
    try {
      tok::render_chat_template(c["template"], context_of(c));
      ADD_FAILURE() << c["name"] << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c["error"].get<std::string>()), std::string::npos) << e.what();
    }
  }
}

TEST(ChatTemplate, ThroughTheTokenizerConfig) {
  const Tokenizer* qwen = testing::reference_tokenizer("qwen3");
  ASSERT_NE(qwen, nullptr);
  ASSERT_TRUE(qwen->has_chat_template());
  std::string s = qwen->apply_chat_template({{"user", "Hi"}}, true);
  EXPECT_EQ(s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // The rendered prompt's special tokens encode as single ids.
  auto ids = qwen->encode(s, false);
  EXPECT_EQ(ids.front(), *qwen->token_to_id("<|im_start|>"));
  EXPECT_EQ(qwen->eos_id(), qwen->token_to_id("<|im_end|>"));

  const Tokenizer* llama3 = testing::reference_tokenizer("llama3");
  ASSERT_NE(llama3, nullptr);
  EXPECT_EQ(llama3->apply_chat_template({{"user", "Hi"}}, true),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(llama3->bos_id(), 128000);
  EXPECT_EQ(llama3->eos_id(), 128001);
}

TEST(ChatTemplate, TemplateFilesAndTokenObjectsBesideTheTokenizer) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("kiln_chat_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  nlohmann::json tj = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"<B>", 1}, {"<E>", 2}}}, {"merges", nlohmann::json::array()}}},
                       {"added_tokens", {{{"id", 1}, {"content", "<B>"}, {"special", true}}, {{"id", 2}, {"content", "<E>"}, {"special", true}}}}};
  std::ofstream(dir / "tokenizer.json") << tj.dump();
  // bos/eos in the {"content": ...} form; eos ids from generation_config as a list.
  std::ofstream(dir / "tokenizer_config.json") << R"({"bos_token": {"content": "<B>", "lstrip": false}, "eos_token": "<E>"})";
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": [2, 0]})";
  std::ofstream(dir / "chat_template.jinja") << "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}";
  auto tok = Tokenizer::load(dir.string());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->stop_ids(), (std::vector<int32_t>{2, 0}));
  ASSERT_TRUE(tok->has_chat_template());
  EXPECT_EQ(tok->apply_chat_template({{"user", "a"}}, true), "<B>[user]a<E>");
  fs::remove(dir / "chat_template.jinja");
  std::ofstream(dir / "chat_template.json") << R"({"chat_template": "{{ messages | length }}"})";
  EXPECT_EQ(Tokenizer::load(dir.string())->apply_chat_template({{"user", "a"}, {"assistant", "b"}}, false), "2");
}

TEST(ChatTemplate, NoTemplateIsAClearError) {
  auto tok = Tokenizer::load(testing::source_path("tests/data/models/tiny-code"));
  EXPECT_FALSE(tok->has_chat_template());
  try {
    tok->apply_chat_template({{"user", "x"}}, true);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no chat template"), std::string::npos) << e.what();
  }
}

TEST(Jinja, ExpressionsFollowPythonAndJinja) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ 2 ** 3 }}|{{ 1 / 2 }}"), "7|3|-4|1|8|0.5");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }}|{{ 'ab' + 'cd' }}|{{ [1] + [2] }}"), "a1None|abcd|[1, 2]");
  EXPECT_EQ(render("{{ x is defined }}|{{ y is not none }}|{{ not x }}", {{"y", 1}}), "False|True|True");
  EXPECT_EQ(render("{{ 'b' in 'abc' }}|{{ 2 not in [1, 2] }}|{{ 'k' in {'k': 1} }}"), "True|False|True");
  EXPECT_EQ(render("{{ 'yes' if 0 else 'no' }}|{{ 0 or 'x' }}|{{ 1 and 2 }}"), "no|x|2");
  EXPECT_EQ(render("{{ [1, 2, 3, 4][::-1] }}|{{ 'hello'[1:3] }}|{{ [1, 2, 3][-1] }}"), "[4, 3, 2, 1]|el|3");
  EXPECT_EQ(render("{{ {'a': 'x'}['a'] }}{{ {'a': 'x'}.a }}{{ {'a': 'x'}.b }}"), "xx");
  EXPECT_EQ(render("{{ '  hi  ' | trim }}|{{ [1, 2] | length }}|{{ 'abc' | upper }}|{{ none | default('d') }}"),
            "hi|2|ABC|None");
  EXPECT_EQ(render("{{ missing | default('d') }}|{{ [3, 1, 2] | sort | join(',') }}|{{ 'a-b-c'.split('-') }}"),
            "d|1,2,3|['a', 'b', 'c']");
  EXPECT_EQ(render("{{ ' x '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}"),
            "x|axx|True|True");
  EXPECT_EQ(render("{{ 1.0 }}|{{ 2.5 }}|{{ true }}|{{ 10 / 4 }}"), "1.0|2.5|True|2.5");
}

TEST(Jinja, StatementsLoopsAndScopes) {
  EXPECT_EQ(render("{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}"),
            "1TrueFalse3;2FalseFalse3;3FalseTrue3;");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4] if x % 2 == 0 %}{{ x }}{{ ',' if not loop.last }}{% endfor %}"), "2,4");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }} {% endfor %}"), "a=1 b=2 ");
  // set inside a loop does not leak; a namespace does.
  EXPECT_EQ(render("{% set n = 0 %}{% set ns = namespace(n=0) %}{% for x in [1, 2] %}{% set n = n + x %}"
                   "{% set ns.n = ns.n + x %}{% endfor %}{{ n }}/{{ ns.n }}"),
            "0/3");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4] %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}"
                   "{{ x }}{% endfor %}"),
            "2");
  EXPECT_EQ(render("{% if 0 %}a{% elif 1 %}b{% else %}c{% endif %}"), "b");
  EXPECT_EQ(render("{% macro greet(name, p='Hi') %}{{ p }} {{ name }}{% endmacro %}{{ greet('Bob') }}, {{ greet('Al', p='Yo') }}"),
            "Hi Bob, Yo Al");
  EXPECT_EQ(render("{% set block %}x{{ 1 + 1 }}{% endset %}[{{ block }}]"), "[x2]");
  EXPECT_EQ(render("{{ [{'r': 'u'}, {'r': 'a'}, {'r': 'u'}] | selectattr('r', 'equalto', 'u') | list | length }}"), "2");
  EXPECT_EQ(render("{{ [{'r': 'u'}, {'r': 'a'}] | map(attribute='r') | join('+') }}"), "u+a");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(render("{{ range(3) | list }}"), "[0, 1, 2]");
}

TEST(Jinja, TojsonMatchesPythonJsonDumps) {
  EXPECT_EQ(render("{{ {'a': [1, 2.5, 'x\"y'], 'b': none, 'c': true, 'd': 'é\n'} | tojson }}"),
            "{\"a\": [1, 2.5, \"x\\\"y\"], \"b\": null, \"c\": true, \"d\": \"é\\n\"}");
  EXPECT_EQ(render("{{ {'a': [1], 'b': {}} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}");
}

TEST(Jinja, UnsupportedThingsAreNamedErrors) {
  auto err = [](const std::string& t) -> std::string {
    try {
      render(t);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(err("{{ x | frobnicate }}").find("unsupported filter 'frobnicate'"), std::string::npos);
  EXPECT_NE(err("{% include 'x' %}").find("unsupported statement '{% include %}'"), std::string::npos);
  EXPECT_NE(err("{{ 'a'.zfill(3) }}").find("unsupported method 'zfill'"), std::string::npos);
  EXPECT_NE(err("{% if x %}").find("missing {% endif %}"), std::string::npos);
  EXPECT_NE(err("{{ 1 + }}").find("unexpected end of expression"), std::string::npos);
  EXPECT_NE(err("{{ nope() }}").find("unknown function 'nope'"), std::string::npos);
  EXPECT_NE(err("{{ raise_exception('boom') }}").find("boom"), std::string::npos);
}

}  // namespace
}  // namespace kiln
