// Bad requests and runtime flags through `kiln run` and `kiln bench`, as a hostile user would send them: each
// gives one clear error naming the line, field or flag (and the limit), a non-zero exit, and every good request
// of the same file still gets its result line, in input order.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>

#include "common/test_util.h"

namespace kiln::test {
namespace {

// The llama fixture converted and built for cpu through the CLI (max batch 16, beam width 4, max_seq_len as
// given), once per test binary.
const std::string& cli_engine(int max_seq_len = 128) {
  struct Built {
    TempDir dir;
    std::string engine;
  };
  static std::map<int, std::unique_ptr<Built>> built;
  auto& b = built[max_seq_len];
  if (!b) {
    b = std::make_unique<Built>();
    const CmdResult c = run_kiln("convert --model " + model_dir("llama") + " --output " + (b->dir / "ck"));
    EXPECT_EQ(c.exit_code, 0) << c.out;
    b->engine = b->dir / "en";
    const CmdResult r = run_kiln("build --checkpoint " + (b->dir / "ck") + " --output " + b->engine +
                                 " --max-batch-size 16 --max-beam-width 4 --max-seq-len " + std::to_string(max_seq_len));
    EXPECT_EQ(r.exit_code, 0) << r.out;
  }
  return b->engine;
}

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
  const std::string& eng = cli_engine();
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
  const std::string& eng = cli_engine();
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

// Hostile request lines: each gets its own error naming the line and the field; numbers are never converted
// silently (2.5 -> 2, 99999999999 -> a wrapped int32, -1 -> 2^64 - 1 for a seed); the good lines run.
TEST(BadRequest, HostileFieldsAreRefusedByName) {
  const std::string& eng = cli_engine();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"input_ids": [1, 2], "max_new_tokens": -5})", "max_new_tokens -5: must be at least 1"},
      {R"({"input_ids": [], "max_new_tokens": 2})", "the prompt is empty"},
      {R"({"input_ids": [1, 2], "max_new_tokens": 2, "foo": 1})", "unknown field 'foo'"},
      {R"({"input_ids": [1, 2], "max_new_tokens": 99999999999})", "field 'max_new_tokens': expected an integer"},
      {R"({"input_ids": [1, 2], "max_new_tokens": 2.5})", "field 'max_new_tokens': expected an integer"},
      {R"({"input_ids": [1, 2], "max_new_tokens": 2, "seed": -1})", "field 'seed': expected a non-negative integer"},
      {R"({"input_ids": [1, 2], "max_new_tokens": 2, "top_k": 1e20})", "field 'top_k': expected an integer"},
      {R"({"input_ids": [1, 2], "max_new_tokens": 2, "temperature": 1e39})", "field 'temperature': expected a number"},
      {R"({"input_ids": [1, 2], "max_new_tokens": 2, "temperature": "hot"})", "field 'temperature': expected a number"},
      {R"({"input_ids": [1, 2.7], "max_new_tokens": 2})", "field 'input_ids': element 1 is not a token id: 2.7"},
      {R"({"input_ids": [1, 99999999999], "max_new_tokens": 2})", "element 1 is not a token id: 99999999999"},
      {R"({"input_ids": [1, -3], "max_new_tokens": 2})", "input_ids[1] = -3 is outside the vocabulary"},
      {R"({"input_ids": [1, 2], "max_new_tokens": 2, "stop": [[]]})", "stop_sequences[0] is empty"},
      {R"({"input_ids": [1, 2], "max_new_tokens": 2, "stop": [[1, 2.5]]})", "field 'stop': element 1 is not a token id"},
      {"{\"input_ids\": [" + std::string(200, '1').insert(1, ",") + "], \"max_new_tokens\": 2}", "element 1 is not a token id"},
      {R"({"input_ids": [1, 2], "max_new_tokens": 300})", "exceeds the engine's max_seq_len 128"},
      {R"([1, 2, 3])", "expected a JSON object, got [1,2,3]"},
      {R"(null)", "expected a JSON object, got null"},
  };
  std::vector<std::string> lines{kGood};
  for (auto& c : cases) lines.push_back(c.first);
  lines.push_back(kGood);
  std::string long_prompt = R"({"input_ids": [)";
  for (int i = 0; i < 200; ++i) long_prompt += (i ? ", " : "") + std::to_string(5 + i);
  lines.push_back(long_prompt + R"(], "max_new_tokens": 2})");  // 200 tokens > max_input_len 128
  CmdResult r;
  auto res = run_lines(eng, lines, &r);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  ASSERT_EQ(res.size(), lines.size()) << r.out;
  EXPECT_EQ(res.front()["output_ids"].size(), 3u);
  EXPECT_EQ(res[lines.size() - 2]["output_ids"], res.front()["output_ids"]);
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(res[i + 1].contains("error")) << cases[i].first << " -> " << res[i + 1];
    const std::string e = res[i + 1]["error"];
    EXPECT_NE(e.find("/in.jsonl:" + std::to_string(i + 2) + ": "), std::string::npos) << e;
    EXPECT_NE(e.find(cases[i].second), std::string::npos) << cases[i].first << " -> " << e;
  }
  EXPECT_NE(res.back()["error"].get<std::string>().find("prompt of 200 tokens exceeds the engine's max_input_len 128"),
            std::string::npos) << res.back();
}

// A bad flag: a non-zero exit with one line "error: ..." that holds every string of `names` (the flag, its limit).
void expect_flag_error(const CmdResult& r, const std::vector<std::string>& names) {
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  for (auto& n : names) EXPECT_NE(r.out.find(n), std::string::npos) << "should name '" << n << "': " << r.out;
}

// 1 GiB of address space: enough for kiln on a fixture engine, far less than any limit checked too late needs.
constexpr long kCapKiB = 1 << 20;

TEST(BadRequest, RuntimeFlagsOutOfRange) {
  const std::string& eng = cli_engine();
  TempDir tmp;
  {
    std::ofstream(tmp / "in.jsonl") << kGood << "\n";
  }
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"--tokens-per-block 0", {"--tokens-per-block 0", "[1, 4096]"}},  // was SIGFPE
      {"--tokens-per-block -5", {"--tokens-per-block -5", "[1, 4096]"}},
      {"--tokens-per-block 2000000000", {"--tokens-per-block 2000000000", "[1, 4096]"}},
      {"--threads 100000", {"--threads 100000", "[0, 1024]"}},
      {"--threads -1", {"--threads -1", "[0, 1024]"}},
      {"--kv-cache-bytes 0", {"--kv-cache-bytes 0", "positive"}},
      {"--kv-cache-bytes -7", {"--kv-cache-bytes -7", "positive"}},
      {"--kv-cache-bytes 9000000000000000000", {"--kv-cache-bytes 9000000000000000000", "free memory"}},
      {"--kv-cache-fraction 0", {"--kv-cache-fraction 0", "(0, 1]"}},
      {"--kv-cache-fraction 1.5", {"--kv-cache-fraction 1.5", "(0, 1]"}},
      {"--kv-cache-fraction nan", {"--kv-cache-fraction nan", "(0, 1]"}},
      {"--max-num-tokens -1", {"--max-num-tokens -1"}},
      {"--max-num-tokens 100000", {"--max-num-tokens 100000", "max_num_tokens"}},
      {"--seed -1", {"--seed", "negative"}},
  };
  for (auto& [flag, names] : cases) {
    SCOPED_TRACE(flag);
    expect_flag_error(run_kiln_capped("run --engine " + eng + " --input-ids 1,2 " + flag, kCapKiB), names);
    expect_flag_error(run_kiln_capped("run --engine " + eng + " --input-file " + (tmp / "in.jsonl") + " " + flag, kCapKiB),
                      names);
  }
}

// Limits of a single request are checked before its KV pool is sized for it (a --max-new-tokens of 10^7 took
// 10 GB before the max_seq_len error), and bench's workload flags before the workload is built.
TEST(BadRequest, LimitsAreCheckedBeforeAllocating) {
  const std::string& eng = cli_engine();  // max_seq_len 128, max_beam_width 4, max_batch_size 16
  const std::string run = "run --engine " + eng + " --input-ids 1,2 ";
  expect_flag_error(run_kiln_capped(run + "--max-new-tokens 10000000", kCapKiB), {"max_new_tokens", "max_seq_len 128"});
  expect_flag_error(run_kiln_capped(run + "--beam-width 1000", kCapKiB), {"beam_width 1000", "max_beam_width 4"});
  expect_flag_error(run_kiln_capped(run + "--num-return-sequences 1000000 --temperature 1", kCapKiB),
                    {"num_return_sequences 1000000"});
  const std::string bench = "bench --engine " + eng + " ";
  expect_flag_error(run_kiln_capped(bench + "--num-requests 1000000000 --input-len 4 --output-len 2", kCapKiB),
                    {"--num-requests 1000000000", "1000000"});
  expect_flag_error(run_kiln_capped("bench --engine " + cli_engine(256) +
                                        " --num-requests 1000000 --input-len 200 --output-len 2", kCapKiB),
                    {"--num-requests 1000000", "--input-len 200", "134217728"});
  expect_flag_error(run_kiln_capped(bench + "--num-requests 0", kCapKiB), {"--num-requests 0"});
  expect_flag_error(run_kiln_capped(bench + "--input-len nan", kCapKiB), {"--input-len nan"});
  expect_flag_error(run_kiln_capped(bench + "--output-len 1e12", kCapKiB), {"--output-len", "2147483647"});
  expect_flag_error(run_kiln_capped(bench + "--output-len-std -1", kCapKiB), {"--output-len-std -1"});
  expect_flag_error(run_kiln_capped(bench + "--request-rate -1", kCapKiB), {"--request-rate -1"});
  expect_flag_error(run_kiln_capped(bench + "--tokens-per-block 0", kCapKiB), {"--tokens-per-block 0"});
  expect_flag_error(run_kiln_capped(bench + "--threads 100000", kCapKiB), {"--threads 100000", "1024"});
}

}  // namespace
}  // namespace kiln::test
