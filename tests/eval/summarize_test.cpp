// kiln eval summarize's inputs: the JSONL dataset and saved predictions, one clear error per bad input.
#include "eval/summarize.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/test_util.h"

namespace kiln::eval {
namespace {

using test::error_of;

std::string write(const test::TempDir& d, const std::string& name, const std::string& text) {
  std::ofstream(d / name, std::ios::binary) << text;
  return d / name;
}

TEST(SummarizeData, ReadsFieldsAndMaxSamples) {
  test::TempDir d;
  const std::string p = write(d, "d.jsonl",
                              "{\"article\": \"A long text.\", \"highlights\": \"Short.\", \"id\": 1}\n\n"
                              "{\"article\": \"Second.\", \"highlights\": \"2nd.\"}\n"
                              "{\"article\": \"Third.\", \"highlights\": \"3rd.\"}\n");
  auto r = read_summarize_dataset(p, {});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[1].input, "Second.");
  EXPECT_EQ(r[1].reference, "2nd.");
  EXPECT_EQ(r[1].line, 3);
  DatasetFields f;
  f.max_samples = 2;
  EXPECT_EQ(read_summarize_dataset(p, f).size(), 2u);
  f = {};
  f.input = "highlights";
  f.reference = "article";
  EXPECT_EQ(read_summarize_dataset(p, f)[0].input, "Short.");
}

TEST(SummarizeBadInput, OneClearErrorEach) {
  test::TempDir d;
  const std::string missing =
      write(d, "m.jsonl", "{\"article\": \"x\", \"highlights\": \"y\"}\n{\"article\": \"x\"}\n");
  EXPECT_EQ(error_of([&] { read_summarize_dataset(missing, {}); }),
            missing + ":2: no field \"highlights\" (set the field's name with --reference-field)");
  DatasetFields f;
  f.input = "document";
  EXPECT_EQ(error_of([&] { read_summarize_dataset(missing, f); }),
            missing + ":1: no field \"document\" (set the field's name with --input-field)");
  const std::string not_string = write(d, "n.jsonl", "{\"article\": 5, \"highlights\": \"y\"}\n");
  EXPECT_EQ(error_of([&] { read_summarize_dataset(not_string, {}); }),
            not_string + ":1: field \"article\" is not a string");
  const std::string empty = write(d, "e.jsonl", "\n  \n");
  EXPECT_EQ(error_of([&] { read_summarize_dataset(empty, {}); }),
            "--dataset " + empty + ": no records (an empty dataset)");
  const std::string bad_json = write(d, "b.jsonl", "{\"article\": \"x\", \"highlights\": \"y\"}\n{\"article\": \n");
  EXPECT_EQ(error_of([&] { read_summarize_dataset(bad_json, {}); }).rfind(bad_json + ":2: malformed JSON: ", 0), 0u);
  const std::string not_object = write(d, "o.jsonl", "[1, 2]\n");
  EXPECT_EQ(error_of([&] { read_summarize_dataset(not_object, {}); }),
            not_object + ":1: expected a JSON object per line");
  EXPECT_EQ(error_of([&] { read_summarize_dataset(d / "none.jsonl", {}); }).rfind(d / "none.jsonl: cannot open", 0),
            0u);
}

TEST(SummarizePredictions, PredictionOrTextFieldAndCount) {
  test::TempDir d;
  const std::string p = write(d, "p.jsonl", "{\"prediction\": \"a\"}\n{\"text\": \"b\", \"output_ids\": [1]}\n");
  EXPECT_EQ(read_predictions(p, 2), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(read_predictions(p, 1), (std::vector<std::string>{"a"}));
  EXPECT_EQ(error_of([&] { read_predictions(p, 3); }),
            "--compare-with " + p + ": 2 predictions for 3 records (one line per record, in dataset order)");
  const std::string report =
      write(d, "r.json", "{\n  \"eval\": \"summarize\",\n  \"predictions\": [\"x\", \"y\"]\n}\n");
  EXPECT_EQ(read_predictions(report, 2), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(error_of([&] { read_predictions(report, 3); }),
            "--compare-with " + report + ": 2 predictions for 3 records (one per record, in dataset order)");
  const std::string bad = write(d, "q.jsonl", "{\"summary\": \"a\"}\n");
  EXPECT_EQ(error_of([&] { read_predictions(bad, 1); }), bad + ":1: no field \"prediction\" (or \"text\")");
}

}  // namespace
}  // namespace kiln::eval
