// kiln eval compare's rule: a figure fails when a report falls more than its tolerance below the baseline.
#include "eval/compare.h"

#include <gtest/gtest.h>

#include "common/test_util.h"

namespace kiln::eval {
namespace {

using nlohmann::json;
using test::error_of;

json report(double r1, double rl, const std::string& sha = "abc", const std::string& kind = "summarize") {
  return {{"eval", kind}, {"dataset", {{"sha256", sha}}}, {"figures", {{"rouge1", r1}, {"rougeL", rl}}}};
}

TEST(Compare, DropsBeyondToleranceFailRisesPass) {
  CompareOptions o;
  o.tolerance = 1.0;
  auto r = compare_reports({report(30, 20), report(29.5, 25), report(28.9, 20)}, {"a", "b", "c"}, o);
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].figure, "rouge1");
  EXPECT_FALSE(r.rows[0].pass);  // c is 1.1 below
  EXPECT_TRUE(r.rows[1].pass);   // b is above: not a loss
  EXPECT_FALSE(r.pass());
  o.per_figure["rouge1"] = 1.5;
  EXPECT_TRUE(compare_reports({report(30, 20), report(29.5, 25), report(28.9, 20)}, {"a", "b", "c"}, o).pass());
  o.per_figure.clear();
  o.figures = {"rougeL"};
  r = compare_reports({report(30, 20), report(10, 19.5)}, {"a", "b"}, o);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_TRUE(r.pass());
  EXPECT_NE(r.table({"a", "b"}).find("-0.5000"), std::string::npos);
}

TEST(Compare, RefusesReportsThatCannotBeCompared) {
  CompareOptions o;
  EXPECT_EQ(error_of([&] { compare_reports({report(1, 1)}, {"a"}, o); }),
            "kiln eval compare: give at least two reports (the first is the baseline)");
  EXPECT_EQ(error_of([&] {
              compare_reports({report(1, 1), report(1, 1, "def")}, {"a", "b"}, o);
            }),
            "a and b were made on different datasets (sha256 abc and def)");
  EXPECT_EQ(error_of([&] {
              compare_reports({report(1, 1), report(1, 1, "abc", "mmlu")}, {"a", "b"}, o);
            }),
            "a is a kiln eval \"summarize\" report, b a kiln eval \"mmlu\" report");
  EXPECT_EQ(error_of([&] {
              compare_reports({report(1, 1), json{{"x", 1}}}, {"a", "b"}, o);
            }),
            "b: not a kiln eval report (no \"eval\")");
  json partial = report(1, 1);
  partial["figures"].erase("rougeL");
  EXPECT_EQ(error_of([&] { compare_reports({report(1, 1), partial}, {"a", "b"}, o); }), "b: no figure \"rougeL\"");
  o.per_figure["rouge9"] = 1;
  EXPECT_EQ(error_of([&] {
              compare_reports({report(1, 1), report(1, 1)}, {"a", "b"}, o);
            }),
            "--tolerance-for rouge9: no such figure is compared (figures: rouge1, rougeL)");
}

}  // namespace
}  // namespace kiln::eval
