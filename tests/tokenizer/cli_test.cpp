// `kiln tokenize` / `kiln detokenize`: the shared output functions, and the kiln binary itself.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <sys/wait.h>

#include "core/error.h"
#include "tok_test_util.h"
#include "tokenizer/cli_io.h"

namespace kiln {
namespace {

const std::string kTiny = testing::source_path("tests/data/models/tiny-code");

struct CliRun {
  int status;
  std::string out;  // stdout and stderr
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CliRun run(const std::string& args) {
  std::string cmd = quote(KILN_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

TEST(TokenizerCli, OutputFunctions) {
  auto tok = Tokenizer::load(kTiny);
  auto ids = tok->encode("def f(x):\n    return x\n");
  nlohmann::json j = nlohmann::json::parse(tok::tokenize_json(kTiny, "def f(x):\n    return x\n", true));
  EXPECT_EQ(j["ids"].get<std::vector<int32_t>>(), ids);
  EXPECT_EQ(ids.front(), 0);  // BOS
  j = nlohmann::json::parse(tok::tokenize_json(kTiny, "def f(x):\n    return x\n", false));
  EXPECT_EQ(j["ids"].get<std::vector<int32_t>>(), std::vector<int32_t>(ids.begin() + 1, ids.end()));
  std::string csv;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) csv += ',';
    csv += std::to_string(ids[i]);
  }
  j = nlohmann::json::parse(tok::detokenize_json(kTiny, csv));
  EXPECT_EQ(j["text"], "<|bos|>def f(x):\n    return x\n");  // special tokens kept
}

TEST(TokenizerCli, Binary) {
  CliRun r = run("tokenize --tokenizer " + quote(kTiny) + " --text " + quote("print(\"héllo\")\n"));
  ASSERT_EQ(r.status, 0) << r.out;
  auto tok = Tokenizer::load(kTiny);
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["ids"].get<std::vector<int32_t>>(), tok->encode("print(\"héllo\")\n"));

  r = run("tokenize --no-special-tokens --tokenizer " + quote(kTiny + "/tokenizer.json") + " --text " + quote("x = 1"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["ids"].get<std::vector<int32_t>>(), tok->encode("x = 1", false));

  std::string csv;
  for (int32_t id : tok->encode("a\t\"b\"\n")) csv += std::to_string(id) + ",";
  csv.pop_back();
  r = run("detokenize --tokenizer " + quote(kTiny) + " --ids " + csv);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find(R"({"text": "<|bos|>a\t\"b\"\n"})"), std::string::npos) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["text"], "<|bos|>a\t\"b\"\n");

  r = run("tokenize --tokenizer /nonexistent/tok.json --text hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("error: tokenizer path /nonexistent/tok.json does not exist"), std::string::npos) << r.out;
  r = run("detokenize --tokenizer " + quote(kTiny) + " --ids 1,99999");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("error: token id 99999 is not in the vocabulary"), std::string::npos) << r.out;
  r = run("detokenize --tokenizer " + quote(kTiny) + " --ids 1,two");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("error: --ids: 'two' is not a token id"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kiln
