// JSON parsing with a nesting limit: hostile input (100,000 nested brackets) is refused while it is parsed, with
// an error, instead of overflowing the stack in nlohmann::json's recursive serializer and comparisons.
#include "io/json_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "common/test_util.h"
#include "core/error.h"
#include "io/safetensors.h"

namespace kiln {
namespace {

using test::error_of;

using test::TempDir;

std::string nested(int depth, char open = '[', char close = ']') {
  return std::string(size_t(depth), open) + std::string(size_t(depth), close);
}

TEST(JsonFile, ParseRefusesNestingDeeperThanTheLimit) {
  EXPECT_EQ(parse_json(nested(kMaxJsonDepth)).dump().size(), size_t(2 * kMaxJsonDepth));
  const std::string e = error_of([] { parse_json(nested(kMaxJsonDepth + 1)); });
  EXPECT_NE(e.find("nested deeper than " + std::to_string(kMaxJsonDepth)), std::string::npos) << e;
  EXPECT_NE(error_of([] { parse_json(nested(100000)); }).find("nested deeper"), std::string::npos);
  // Objects count as levels too: {"a":{"a":...}}.
  std::string obj;
  for (int i = 0; i < 100000; ++i) obj += "{\"a\":";
  obj += "1" + std::string(100000, '}');
  EXPECT_NE(error_of([&] { parse_json(obj); }).find("nested deeper"), std::string::npos);
  // Unclosed: refused at the limit, before the end of the text is seen.
  EXPECT_NE(error_of([] { parse_json(std::string(100000, '[')); }).find("nested deeper"), std::string::npos);
}

TEST(JsonFile, ParseKeepsNlohmannsErrorsAndValues) {
  EXPECT_EQ(parse_json(R"({"a": [1, 2.5, "x", null, true, {"b": -3}]})"),
            nlohmann::json::parse(R"({"a": [1, 2.5, "x", null, true, {"b": -3}]})"));
  EXPECT_NE(error_of([] { parse_json("{\"a\": "); }).find("parse error"), std::string::npos);
  EXPECT_NE(error_of([] { parse_json("\"\xff\""); }).find("UTF-8"), std::string::npos);
}

TEST(JsonFile, DeepFilesAreRefusedNamingTheFile) {
  TempDir tmp;
  std::ofstream(tmp / "config.json") << nested(100000);
  const std::string e = error_of([&] { read_json_file(tmp / "config.json"); });
  EXPECT_NE(e.find(tmp / "config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("nested deeper"), std::string::npos) << e;
  // A safetensors header that nests: the same refusal, naming the file.
  {
    const std::string h = "{\"t\": " + nested(100000) + "}";
    std::ofstream f(tmp / "x.safetensors", std::ios::binary);
    const uint64_t n = h.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << h;
  }
  const std::string s = error_of([&] { SafetensorsFile f(tmp / "x.safetensors"); });
  EXPECT_NE(s.find("x.safetensors: malformed header JSON"), std::string::npos) << s;
  EXPECT_NE(s.find("nested deeper"), std::string::npos) << s;
}

TEST(JsonFile, WritingOntoADirectoryLeavesNothingBehind) {
  TempDir tmp;
  std::filesystem::create_directory(tmp / "out");
  const std::string e = error_of([&] { write_json_file(tmp / "out", nlohmann::json{{"a", 1}}); });
  EXPECT_NE(e.find("is a directory"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(tmp / "out.tmp"));
  EXPECT_TRUE(std::filesystem::is_empty(tmp / "out"));
  // Strings that are not UTF-8 are written with U+FFFD, not refused.
  write_json_file(tmp / "x.json", nlohmann::json{{"text", "a\xff"}});
  EXPECT_EQ(read_json_file(tmp / "x.json")["text"], "a\xEF\xBF\xBD");
  EXPECT_FALSE(std::filesystem::exists(tmp / "x.json.tmp"));
}

}  // namespace
}  // namespace kiln
