// kiln eval perplexity of tiny-code on its held-out sympy text against transformers' on the same text and windows
// (scripts/dev/perplexity_reference.py, run on the GPU machine's CPU in float32 from the bf16 checkpoint; stored in
// tests/data/quant/reference/perplexity_reference.json): the same token, word, byte and window counts, and the
// figures within 1e-4 relative. (About a minute: 74,508 tokens through the cpu engine.)
#include <gtest/gtest.h>

#include <cmath>

#include "common/test_util.h"
#include "io/json_file.h"

namespace kiln::test {
namespace {

TEST(PerplexityReference, TinyCodeOnSympyMatchesTransformers) {
  const std::string data = source_dir() + "/tests/data/quant";
  const auto ref = read_json_file(data + "/reference/perplexity_reference.json");
  const auto& f32 = ref["float32"];
  TempDir tmp;
  auto r = run_kiln("convert --model " + model_dir("tiny-code") + " --output " + (tmp / "ck"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "e") + " --max-seq-len 512 " +
               "--max-batch-size 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_kiln("eval perplexity --engine " + (tmp / "e") + " --dataset " + data + "/sympy-eval.jsonl --max-length " +
               std::to_string(ref["max_length"].get<int>()) + " --no-progress --json-out " + (tmp / "p.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto got = read_json_file(tmp / "p.json");
  EXPECT_EQ(got["tokens"], f32["tokens"]) << "the same tokenization";
  EXPECT_EQ(got["words"], f32["words"]);
  EXPECT_EQ(got["bytes"], f32["bytes"]);
  EXPECT_EQ(got["windows"], f32["windows"]) << "the same window policy";
  for (const char* k : {"token_perplexity", "word_perplexity", "bits_per_byte"}) {
    const double g = got[k].get<double>(), w = f32[k].get<double>();
    EXPECT_LE(std::fabs(g - w) / w, 1e-4) << k << ": kiln " << g << ", transformers " << w;
  }
}

}  // namespace
}  // namespace kiln::test
