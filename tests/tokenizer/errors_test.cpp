// Bad input: every failure is a kiln::Error whose message names the file, component or id.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tok_test_util.h"
#include "tokenizer/cli_io.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("kiln_tok_errors_" + std::to_string(::getpid())) / name;
  fs::create_directories(d);
  return d;
}

std::string write(const std::string& name, const std::string& file, const std::string& content) {
  fs::path p = temp_dir(name) / file;
  std::ofstream(p) << content;
  return p.string();
}

// The message of the kiln::Error that f throws ("" when it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

json minimal() {
  return {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}}}, {"merges", json::array()}}}};
}

std::string load_error(const std::string& name, const json& j) {
  std::string p = write(name, "tokenizer.json", j.dump());
  return error_of([&] { Tokenizer::load(p); });
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST(TokenizerErrors, MissingPathsAndFiles) {
  EXPECT_HAS(error_of([] { Tokenizer::load("/nonexistent/kiln/tokenizer.json"); }), "/nonexistent/kiln/tokenizer.json");
  EXPECT_HAS(error_of([] { Tokenizer::load(temp_dir("empty_folder").string()); }), "neither tokenizer.json nor vocab.json");
  std::string vocab = write("no_merges", "vocab.json", R"({"a": 0})");
  EXPECT_HAS(error_of([&] { Tokenizer::load(vocab); }), "merges.txt");
}

TEST(TokenizerErrors, MalformedJson) {
  std::string p = write("malformed", "tokenizer.json", "{\"model\": {\"type\": \"BPE\",");
  std::string e = error_of([&] { Tokenizer::load(p); });
  EXPECT_HAS(e, "not valid JSON");
  EXPECT_HAS(e, p);
  std::string cfg_dir = temp_dir("bad_config").string();
  std::ofstream(cfg_dir + "/tokenizer.json") << minimal().dump();
  std::ofstream(cfg_dir + "/tokenizer_config.json") << "{oops";
  EXPECT_HAS(error_of([&] { Tokenizer::load(cfg_dir); }), "tokenizer_config.json is not valid JSON");
  // 100,000 nested brackets: refused while parsing (nlohmann's recursive serializer would overflow the stack).
  std::string deep = write("deep", "tokenizer.json", std::string(100000, '[') + std::string(100000, ']'));
  e = error_of([&] { Tokenizer::load(deep); });
  EXPECT_HAS(e, deep);
  EXPECT_HAS(e, "nested deeper than");
}

TEST(TokenizerErrors, UnsupportedComponentsAreNamed) {
  json j = minimal();
  j["model"]["type"] = "Unigram";
  EXPECT_HAS(load_error("unigram", j), "unsupported model type 'Unigram'");
  j = minimal();
  j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}};
  EXPECT_HAS(load_error("precompiled", j), "unsupported normalizer type 'Precompiled'");
  j = minimal();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "BertNormalizer"}}}}};
  EXPECT_HAS(load_error("bert_norm", j), "unsupported normalizer type 'BertNormalizer'");
  j = minimal();
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  EXPECT_HAS(load_error("bert_pre", j), "unsupported pre-tokenizer type 'BertPreTokenizer'");
  j = minimal();
  j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
  EXPECT_HAS(load_error("wordpiece_dec", j), "unsupported decoder type 'WordPiece'");
  j = minimal();
  j["post_processor"] = {{"type", "Frobnicate"}};
  EXPECT_HAS(load_error("post", j), "unsupported post-processor type 'Frobnicate'");
  j = minimal();
  j["model"]["dropout"] = 0.1;
  EXPECT_HAS(load_error("dropout", j), "dropout");
}

TEST(TokenizerErrors, InconsistentModels) {
  json j = minimal();
  j["model"]["merges"] = {"a c"};
  EXPECT_HAS(load_error("bad_merge", j), "'c' is not in the vocabulary");
  j = minimal();
  j["model"]["merges"] = {"a b"};
  EXPECT_HAS(load_error("bad_merge_result", j), "'ab' is not in the vocabulary");
  j = minimal();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}, {"invert", false}};
  EXPECT_HAS(load_error("bad_regex", j), "does not compile");
  j = minimal();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Sideways"}, {"invert", false}};
  EXPECT_HAS(load_error("bad_behavior", j), "unknown behavior 'Sideways'");
  std::string dir = temp_dir("bad_bos").string();
  std::ofstream(dir + "/tokenizer.json") << minimal().dump();
  std::ofstream(dir + "/tokenizer_config.json") << R"({"bos_token": {"content": "<nope>"}})";
  EXPECT_HAS(error_of([&] { Tokenizer::load(dir); }), "bos_token '<nope>' is not in the vocabulary");
}

TEST(TokenizerErrors, BadIds) {
  std::string p = write("ids", "tokenizer.json", minimal().dump());
  auto tok = Tokenizer::load(p);
  EXPECT_HAS(error_of([&] { tok->decode({0, 7}); }), "token id 7 is not in the vocabulary");
  EXPECT_HAS(error_of([&] { tok->decode({-1}); }), "token id -1");
  IncrementalDecoder dec(*tok);
  EXPECT_HAS(error_of([&] { dec.push(99); }), "token id 99");
  EXPECT_HAS(error_of([] { tok::parse_id_list("1,x,3"); }), "'x' is not a token id");
  EXPECT_HAS(error_of([] { tok::parse_id_list("1,,3"); }), "'' is not a token id");
  EXPECT_HAS(error_of([] { tok::parse_id_list("-4"); }), "'-4' is not a token id");
  EXPECT_EQ(tok::parse_id_list(" 1, 2 ,3 "), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_TRUE(tok::parse_id_list("").empty());
}

}  // namespace
}  // namespace kiln
