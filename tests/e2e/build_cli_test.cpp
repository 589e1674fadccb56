// kiln build flags that change engine.json: --batch-invariant is recorded (default off) and a cpu engine built with
// it runs as any cpu engine (the cpu backend is batch-invariant whatever the flag says).
#include <gtest/gtest.h>

#include "common/test_util.h"
#include "io/json_file.h"

namespace kiln::test {
namespace {

TEST(BuildCli, BatchInvariantIsRecorded) {
  TempDir tmp;
  ASSERT_EQ(run_kiln("convert --model " + model_dir("llama") + " --output " + (tmp / "ck")).exit_code, 0);
  auto r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "plain") + " --max-seq-len 64");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(read_json_file(tmp / "plain/engine.json")["batch_invariant"], false);
  r = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "inv") +
               " --max-seq-len 64 --batch-invariant");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(read_json_file(tmp / "inv/engine.json")["batch_invariant"], true);
  auto a = run_kiln("run --engine " + (tmp / "plain") + " --input-ids 5,17,42 --max-new-tokens 6");
  auto b = run_kiln("run --engine " + (tmp / "inv") + " --input-ids 5,17,42 --max-new-tokens 6");
  ASSERT_EQ(a.exit_code, 0) << a.out;
  EXPECT_EQ(b.exit_code, 0) << b.out;
  EXPECT_EQ(a.out, b.out);
}

}  // namespace
}  // namespace kiln::test
