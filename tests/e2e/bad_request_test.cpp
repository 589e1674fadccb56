// Bad requests and runtime flags through `kiln run` and `kiln bench`, as a hostile user would send them: each
// gives one clear error naming the line, field or flag (and the limit), a non-zero exit, and every good request
// of the same file still gets its result line, in input order.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "runtime/runtime_fixtures.h"

namespace kiln::test {
namespace {

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Runs `lines` (one request each) through kiln run --input-file; the result lines.
std::vector<nlohmann::json> run_lines(const std::string& engine, const std::vector<std::string>& lines,
                                      CmdResult* res = nullptr, const std::string& flags = "") {
  TempDir tmp;
  {
    std::ofstream f(tmp / "in.jsonl", std::ios::binary);
    for (auto& l : lines) f << l << "\n";
  }
  CmdResult r = run_kiln("run --engine " + engine + " --input-file " + (tmp / "in.jsonl") + " --output-file " +
                         (tmp / "out.jsonl") + " " + flags);
  if (res) *res = r;
  return read_jsonl(tmp / "out.jsonl");
}

const std::string kGood = R"({"input_ids": [1, 2, 3], "max_new_tokens": 3, "end_id": -1})";

TEST(BadRequest, DeeplyNestedLineIsOneErrorAndTheOthersRun) {
  const std::string& eng = engine_dir("llama");
  CmdResult r;
  auto res = run_lines(eng, {kGood, std::string(100000, '[') + std::string(100000, ']'), kGood}, &r);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  ASSERT_EQ(res.size(), 3u) << r.out;
  EXPECT_EQ(res[0]["output_ids"].size(), 3u);
  EXPECT_NE(res[1]["error"].get<std::string>().find("in.jsonl:2: arrays or objects nested deeper than"),
            std::string::npos) << res[1];
  EXPECT_EQ(res[2]["output_ids"], res[0]["output_ids"]);
  // Deep nesting inside a field: the same.
  res = run_lines(eng, {R"({"input_ids": )" + std::string(5000, '[') + std::string(5000, ']') + "}", kGood}, &r);
  ASSERT_EQ(res.size(), 2u) << r.out;
  EXPECT_NE(res[0]["error"].get<std::string>().find("nested deeper"), std::string::npos) << res[0];
  EXPECT_EQ(res[1]["output_ids"].size(), 3u);
}

TEST(BadRequest, InvalidUtf8LineGetsItsOwnErrorLine) {
  const std::string& eng = engine_dir("llama");
  CmdResult r;
  const std::string bad = "{\"input_ids\": [1, 2], \"note\": \"\xff\xfe\"}";
  auto res = run_lines(eng, {kGood, bad, R"({"input_ids": [4, 5], "max_new_tokens": 2, "end_id": -1})", bad}, &r);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("2 request(s) of"), std::string::npos) << r.out;
  ASSERT_EQ(res.size(), 4u) << r.out;  // every line has its result, in input order
  EXPECT_EQ(res[0]["output_ids"].size(), 3u);
  EXPECT_EQ(res[2]["output_ids"].size(), 2u);
  for (int i : {1, 3}) {
    ASSERT_TRUE(res[i].contains("error")) << res[i];
    const std::string e = res[i]["error"];
    EXPECT_NE(e.find("in.jsonl:" + std::to_string(i + 1) + ": "), std::string::npos) << e;
    EXPECT_NE(e.find("UTF-8"), std::string::npos) << e;
    EXPECT_FALSE(res[i].contains("output_ids"));
  }
  // Every line ran or failed: the same for the good lines alone, exit 0.
  auto good = run_lines(eng, {kGood}, &r);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(good.size(), 1u);
  EXPECT_EQ(good[0]["output_ids"], res[0]["output_ids"]);
}

}  // namespace
}  // namespace kiln::test
