// The executor from the command line: kiln run --input-file (JSONL in, JSONL out, input order, per-line errors),
// kiln run with sampling and beam flags for one prompt, runtime flag errors, and kiln bench.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/json_file.h"
#include "kiln/tokenizer.h"
#include "runtime_fixtures.h"

namespace kiln::test {
namespace {

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(Cli, InputFileRunsEveryRequestAndKeepsInputOrder) {
  const std::string& eng = engine_dir("tiny-code");
  TempDir tmp;
  write_file(tmp / "in.jsonl",
             "{\"id\": \"a\", \"prompt\": \"def fibonacci(n):\\n\", \"max_new_tokens\": 24}\n"
             "{\"input_ids\": [0, 563, 1181, 97], \"max_new_tokens\": 10, \"temperature\": 0.8, \"seed\": 5, "
             "\"return_log_probs\": true, \"end_id\": -1}\n"
             "{\"input_ids\": [0, 563, 1181], \"max_new_tokens\": 6, \"beam_width\": 3, \"num_return_sequences\": 2, "
             "\"end_id\": -1}\n"
             "{\"input_ids\": [1, 2], \"temprature\": 1.0}\n"
             "{not json\n"
             "\n"
             "{\"input_ids\": [5, 6, 7], \"max_new_tokens\": 3000}\n"
             "{\"prompt\": \"import os\\n\", \"max_new_tokens\": 8, \"stop\": [\"\\n\\n\"], \"num_return_sequences\": 2, "
             "\"temperature\": 1.0, \"seed\": 1, \"pad_id\": 2}\n");
  auto r = run_kiln("run --engine " + eng + " --input-file " + (tmp / "in.jsonl") + " --output-file " + (tmp / "out.jsonl"));
  EXPECT_EQ(r.exit_code, 1) << r.out;  // three bad lines
  EXPECT_NE(r.out.find("3 request(s) of"), std::string::npos) << r.out;
  auto res = read_jsonl(tmp / "out.jsonl");
  ASSERT_EQ(res.size(), 7u);

  // Line 1: greedy from a prompt, with text; the same as the C++ API gives.
  auto tok = Tokenizer::load(eng);
  Request q;
  q.input_ids = tok->encode("def fibonacci(n):\n", true);
  q.max_new_tokens = 24;
  Outcome api;
  {
    Executor ex(engine_for("tiny-code"), {});
    api = run_one(ex, q);
  }
  EXPECT_EQ(res[0]["id"], "a");
  EXPECT_EQ(res[0]["output_ids"].get<std::vector<int32_t>>(), api.ids[0]);
  EXPECT_EQ(res[0]["text"].get<std::string>(), tok->decode(api.ids[0], true));
  EXPECT_EQ(res[0]["finish_reason"], finish_reason_name(api.reasons[0]));
  // Line 2: sampled, log-probs.
  EXPECT_EQ(res[1]["output_ids"].size(), 10u);
  EXPECT_EQ(res[1]["log_probs"].size(), 10u);
  EXPECT_EQ(res[1]["finish_reason"], "length");
  // Line 3: beams: lists best first, with scores.
  ASSERT_EQ(res[2]["output_ids"].size(), 2u);
  ASSERT_EQ(res[2]["scores"].size(), 2u);
  EXPECT_GE(res[2]["scores"][0].get<double>(), res[2]["scores"][1].get<double>());
  EXPECT_EQ(res[2]["text"].size(), 2u);
  // Bad lines: clear errors naming the file and line; the rest ran.
  EXPECT_NE(res[3]["error"].get<std::string>().find("in.jsonl:4: unknown field 'temprature'"), std::string::npos) << res[3];
  EXPECT_NE(res[4]["error"].get<std::string>().find("in.jsonl:5:"), std::string::npos) << res[4];
  EXPECT_NE(res[5]["error"].get<std::string>().find("exceeds the engine's max_seq_len"), std::string::npos) << res[5];
  // Last line: two samples padded to equal length; a stop given as text.
  ASSERT_EQ(res[6]["output_ids"].size(), 2u);
  EXPECT_EQ(res[6]["output_ids"][0].size(), res[6]["output_ids"][1].size());
}

// A request line with "ignore_eos" (or "end_id") gives the tokens that kiln run --prompt with --ignore-eos (or
// --end-id) gives for the same seeded request. The line used to keep the tokenizer's other stop ids (those after
// the first) as stop sequences, so with a tokenizer of several stop ids (Llama-3's <|eot_id|> beside
// <|end_of_text|>) it ended early: other tokens in the batch file than alone.
TEST(Cli, LineEndFieldsDropEveryStopIdAsTheFlagsDo) {
  TempDir tmp;
  const std::string eng = tmp / "engine";
  std::filesystem::copy(engine_dir("tiny-code"), eng, std::filesystem::copy_options::recursive);
  const std::string prompt = "def fibonacci(n):";  // the same text in JSON and in the shell
  const std::string sampling = " --temperature 0.7 --seed 326 --max-new-tokens 12";
  auto alone = [&](const std::string& flags) {
    auto r = run_kiln("run --engine " + eng + " --prompt '" + prompt + "'" + sampling + flags +
                      " --output-file " + (tmp / "alone.json"));
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return read_json_file(tmp / "alone.json")["output_ids"].get<std::vector<int32_t>>();
  };
  const std::vector<int32_t> full = alone(" --ignore-eos");
  ASSERT_EQ(full.size(), 12u);
  // A second stop id: the first token this request samples, after its second, that it did not sample before.
  size_t at = 2;
  while (at < full.size() && (full[at] == 1 || std::count(full.begin(), full.begin() + ptrdiff_t(at), full[at])))
    ++at;
  ASSERT_LT(at, full.size()) << "pick another prompt or seed";
  const int32_t stop = full[at];
  auto gen = read_json_file(eng + "/generation_config.json");
  gen["eos_token_id"] = {1, stop};
  write_json_file(eng + "/generation_config.json", gen);
  EXPECT_EQ(alone(" --ignore-eos"), full);
  EXPECT_EQ(alone(" --end-id -1"), full);
  const std::vector<int32_t> stopped = alone("");
  EXPECT_EQ(stopped, std::vector<int32_t>(full.begin(), full.begin() + ptrdiff_t(at) + 1)) << "stops at the second stop id";

  write_file(tmp / "in.jsonl",
             "{\"prompt\": \"" + prompt + "\", \"temperature\": 0.7, \"seed\": 326, \"max_new_tokens\": 12, "
             "\"ignore_eos\": true}\n"
             "{\"prompt\": \"" + prompt + "\", \"temperature\": 0.7, \"seed\": 326, \"max_new_tokens\": 12, "
             "\"end_id\": -1}\n"
             "{\"prompt\": \"" + prompt + "\", \"temperature\": 0.7, \"seed\": 326, \"max_new_tokens\": 12}\n");
  auto r = run_kiln("run --engine " + eng + " --input-file " + (tmp / "in.jsonl") + " --output-file " + (tmp / "out.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto res = read_jsonl(tmp / "out.jsonl");
  ASSERT_EQ(res.size(), 3u);
  EXPECT_EQ(res[0]["output_ids"].get<std::vector<int32_t>>(), full) << "ignore_eos in the line";
  EXPECT_EQ(res[1]["output_ids"].get<std::vector<int32_t>>(), full) << "end_id -1 in the line";
  EXPECT_EQ(res[2]["output_ids"].get<std::vector<int32_t>>(), stopped);
  EXPECT_EQ(res[2]["finish_reason"], "stop");
}

TEST(Cli, SingleRequestWithSamplingFlagsGoesThroughTheExecutor) {
  const std::string& eng = engine_dir("llama");
  TempDir tmp;
  auto run = [&](const std::string& flags) {
    auto r = run_kiln("run --engine " + eng + " --input-ids 5,17,33,9 --max-new-tokens 10 --output-file " +
                      (tmp / "o.json") + " " + flags);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return read_json_file(tmp / "o.json");
  };
  auto a = run("--temperature 0.8 --top-k 40 --seed 3");
  auto b = run("--temperature 0.8 --top-k 40 --seed 3");
  EXPECT_EQ(a["output_ids"], b["output_ids"]);
  Request q;
  q.input_ids = {5, 17, 33, 9};
  q.max_new_tokens = 10;
  q.end_id = -1;
  q.sampling.temperature = 0.8f;
  q.sampling.top_k = 40;
  q.sampling.seed = 3;
  Executor ex(engine_for("llama"), {});
  EXPECT_EQ(a["output_ids"].get<std::vector<int32_t>>(), run_one(ex, q).ids[0]);
  auto c = run("--temperature 0.8 --top-k 40 --seed 4");
  EXPECT_NE(a["output_ids"], c["output_ids"]);
  // Runtime flags are accepted and change nothing for greedy output.
  auto g1 = run("");
  auto g2 = run("--scheduler-policy max_utilization --tokens-per-block 4 --max-num-tokens 2 --enable-prefix-reuse");
  EXPECT_EQ(g1["output_ids"], g2["output_ids"]);
}

TEST(Cli, BeamSearchFlagsReproduceTheGolden) {
  const std::string& eng = engine_dir("llama");
  auto golden = read_json_file(model_dir("llama") + "/beam_golden.json")["cases"][0];
  std::string ids;
  for (auto& t : golden["prompt"]) ids += (ids.empty() ? "" : ",") + std::to_string(t.get<int>());
  TempDir tmp;
  auto r = run_kiln("run --engine " + eng + " --input-ids " + ids +
                    " --max-new-tokens 12 --beam-width 4 --num-return-sequences 4 --end-id 3 --length-penalty 1 "
                    "--early-stopping false --output-file " + (tmp / "o.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto o = read_json_file(tmp / "o.json");
  EXPECT_EQ(o["output_ids"], golden["sequences"]);
  for (size_t k = 0; k < 4; ++k) EXPECT_NEAR(o["scores"][k].get<double>(), golden["sequences_scores"][k].get<double>(), 1e-4);
}

TEST(Cli, BadRuntimeAndSamplingFlagsAreClearErrors) {
  const std::string& eng = engine_dir("llama");
  auto err = [&](const std::string& flags, const std::string& what) {
    auto r = run_kiln("run --engine " + eng + " --input-ids 1,2,3 " + flags);
    EXPECT_NE(r.exit_code, 0) << flags;
    EXPECT_NE(r.out.find(what), std::string::npos) << flags << " -> " << r.out;
  };
  err("--scheduler-policy fastest", "--scheduler-policy");
  err("--kv-cache-bytes 10", "smaller than one KV block");
  err("--kv-cache-bytes 100000 --kv-cache-fraction 0.5", "not both");
  err("--max-num-tokens 100000", "--max-num-tokens 100000");
  err("--temperature -2", "temperature -2");
  err("--beam-width 9", "max_beam_width");
  err("--temperature 1 --logits-out x.st", "--logits-out records greedy decoding");
  err("--max-new-tokens 0", "--max-new-tokens 0");
}

TEST(Cli, BenchReportsThroughputAndLatency) {
  const std::string& eng = engine_dir("tiny-code");
  TempDir tmp;
  auto r = run_kiln("bench --engine " + eng + " --num-requests 12 --input-len 20 --input-len-std 6 --output-len 8 "
                    "--output-len-std 3 --concurrency 4 --request-rate 200 --json-out " + (tmp / "b.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (auto what : {"output tokens/s", "requests/s", "TTFT", "time per output token", "inter-token latency", "p99", "KV blocks: peak"})
    EXPECT_NE(r.out.find(what), std::string::npos) << what;
  auto j = read_json_file(tmp / "b.json");
  const auto& res = j["results"];
  EXPECT_EQ(res["completed_requests"], 12);
  EXPECT_EQ(res["failed_requests"], 0);
  EXPECT_GT(res["output_tokens"].get<int64_t>(), 12);
  EXPECT_GT(res["output_tokens_per_s"].get<double>(), 0);
  EXPECT_EQ(res["ttft_ms"]["count"], 12);
  EXPECT_GT(res["ttft_ms"]["p50"].get<double>(), 0);
  EXPECT_LE(res["ttft_ms"]["p50"].get<double>(), res["ttft_ms"]["p99"].get<double>());
  EXPECT_GT(res["itl_ms"]["count"].get<int64_t>(), 0);
  EXPECT_GT(res["kv_blocks_peak"].get<int64_t>(), 0);
  EXPECT_LE(res["mean_tokens_per_step"].get<double>(), 4 * 28.0);  // concurrency 4
  // A dataset instead of synthetic requests.
  write_file(tmp / "d.jsonl", "{\"prompt\": \"x = 1\\n\", \"max_new_tokens\": 4}\n{\"input_ids\": [3, 4], \"max_new_tokens\": 5}\n");
  r = run_kiln("bench --engine " + eng + " --dataset " + (tmp / "d.jsonl") + " --json-out " + (tmp / "d.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(read_json_file(tmp / "d.json")["results"]["completed_requests"], 2);
  r = run_kiln("bench --engine " + eng + " --num-requests 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--num-requests 0"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kiln::test
