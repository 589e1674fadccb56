// Chat templates and the Jinja interpreter against jinja2: every expectation of
// tests/data/tokenizers/chat_templates.json (templates of the model families, Jinja semantics one by one, the
// reference tokenizers' own templates, raise_exception messages) is jinja2's rendering, made as transformers renders
// chat templates by scripts/dev/render_chat_templates.py, which a test here re-runs in check mode. kiln's own errors
// (unsupported constructs) are checked here.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
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

// Renders `tmpl` with `ctx`; an error becomes the rendering "error: ..." so that one case's failure names it.
std::string render_or_error(const std::string& tmpl, const nlohmann::json& ctx) {
  try {
    return tok::render_chat_template(tmpl, ctx);
  } catch (const Error& e) {
    return std::string("error: ") + e.what();
  }
}

TEST(ChatTemplate, FamiliesRenderAsJinja2) {
  ASSERT_GE(data()["cases"].size(), 10u);
  for (const auto& c : data()["cases"])
    EXPECT_EQ(render_or_error(c["template"], context_of(c)), c["expected"].get<std::string>()) << c["name"];
}

TEST(ChatTemplate, JinjaSemanticsAsJinja2) {
  ASSERT_GE(data()["jinja"].size(), 26u);
  for (const auto& c : data()["jinja"]) {
    const nlohmann::json ctx = c.contains("context") ? c["context"] : nlohmann::json::object();
    EXPECT_EQ(render_or_error(c["template"], ctx), c["expected"].get<std::string>())
        << c["name"] << ": " << c["template"];
  }
}

// The reference tokenizers' own templates and special tokens (third_party/tokenizers, scripts/fetch-tokenizers.sh).
TEST(ChatTemplate, TokenizerTemplatesRenderAsJinja2) {
  ASSERT_GE(data()["tokenizer_configs"].size(), 4u);
  for (const auto& c : data()["tokenizer_configs"]) {
    const Tokenizer* tok = testing::reference_tokenizer(c["tokenizer"]);
    ASSERT_NE(tok, nullptr);
    std::vector<ChatMessage> msgs;
    for (const auto& m : c["messages"]) msgs.push_back({m["role"], m["content"]});
    std::string got;
    try {
      got = tok->apply_chat_template(msgs, c["add_generation_prompt"].get<bool>());
    } catch (const Error& e) {
      got = std::string("error: ") + e.what();
    }
    EXPECT_EQ(got, c["expected"].get<std::string>()) << c["name"];
  }
}

// The file above is what scripts/dev/render_chat_templates.py makes: jinja2's renderings, not hand-written ones.
// Skipped only where jinja2 is not installed (Debian: python3-jinja2; the script exits 77 then).
TEST(ChatTemplate, ExpectationsAreJinja2Renderings) {
  const std::string cmd = "python3 " + testing::source_path("scripts/dev/render_chat_templates.py") + " --check 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr) << cmd;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = ::pclose(p);
  const int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (rc == 77) GTEST_SKIP() << out;
  EXPECT_EQ(rc, 0) << cmd << "\n" << out;
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
  std::string s = qwen->apply_chat_template({{"user", "Hi"}}, true);  // jinja2's rendering: TokenizerTemplates...
  // The rendered prompt's special tokens encode as single ids.
  auto ids = qwen->encode(s, false);
  EXPECT_EQ(ids.front(), *qwen->token_to_id("<|im_start|>"));
  EXPECT_EQ(qwen->eos_id(), qwen->token_to_id("<|im_end|>"));

  const Tokenizer* llama3 = testing::reference_tokenizer("llama3");
  ASSERT_NE(llama3, nullptr);
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
