// MMLU data: the Hendrycks layout, the prompts (written out by hand here from Hendrycks' and lm-eval's formats),
// accuracy tallies, and one clear error per bad input.
#include "eval/mmlu.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/test_util.h"

namespace kiln::eval {
namespace {

using test::error_of;

void write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// A data dir with one subject: two dev examples, two test questions.
struct Data {
  test::TempDir dir;
  Data() {
    write(dir / "dev/high_school_physics_dev.csv", "What is 1+1?,1,2,3,4,B\n\"Pick, one\",x,y,z,w,D\n");
    write(dir / "test/high_school_physics_test.csv", "Q1?,a,b,c,d,A\nQ2?,e,f,g,h,C\n");
  }
};

TEST(Mmlu, LetterPromptIsHendrycksFormat) {
  Data d;
  const MmluData data = load_mmlu(d.dir.path(), {});
  ASSERT_EQ(data.subjects.size(), 1u);
  const MmluSubject& s = data.subjects[0];
  EXPECT_EQ(s.category, "STEM");
  EXPECT_EQ(letter_prompt(s, s.test[1], 2),
            "The following are multiple choice questions (with answers) about  high school physics.\n\n"
            "What is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
            "Pick, one\nA. x\nB. y\nC. z\nD. w\nAnswer: D\n\n"
            "Q2?\nA. e\nB. f\nC. g\nD. h\nAnswer:");
  EXPECT_EQ(letter_prompt(s, s.test[0], 0),
            "The following are multiple choice questions (with answers) about  high school physics.\n\n"
            "Q1?\nA. a\nB. b\nC. c\nD. d\nAnswer:");
}

TEST(Mmlu, ClozePromptsQaAndPlain) {
  Data d;
  const MmluData data = load_mmlu(d.dir.path(), {});
  const MmluSubject& s = data.subjects[0];
  EXPECT_EQ(cloze_prompt(s, s.test[0], 1, ClozeFormat::QA),
            "The following are questions (with answers) about high school physics.\n\n"
            "Question: What is 1+1?\nAnswer: 2\n\nQuestion: Q1?\nAnswer:");
  EXPECT_EQ(cloze_candidate(s.test[0], 2, ClozeFormat::QA), " c");
  EXPECT_EQ(cloze_prompt(s, s.test[0], 2, ClozeFormat::Plain), "What is 1+1?\n2\n\nPick, one\nw\n\nQ1?");
  EXPECT_EQ(cloze_candidate(s.test[0], 3, ClozeFormat::Plain), "\nd");
}

TEST(Mmlu, TallyWeighsEveryQuestionTheSame) {
  MmluSubject a{"a", "x", {}, {}}, b{"b", "x", {}, {}}, c{"c", "y", {}, {}};
  MmluTally t;
  t.add(a, true);
  t.add(b, false);
  t.add(b, false);
  t.add(c, true);
  EXPECT_DOUBLE_EQ(t.subjects["a"].accuracy(), 1.0);
  EXPECT_DOUBLE_EQ(t.subjects["b"].accuracy(), 0.0);
  EXPECT_DOUBLE_EQ(t.categories["x"].accuracy(), 1.0 / 3);
  EXPECT_DOUBLE_EQ(t.all.accuracy(), 0.5);  // 2 of 4, not the mean of the subjects (2/3)
}

TEST(Mmlu, CategoriesFileNamesCustomSubjects) {
  const MmluData data = load_mmlu(test::source_dir() + "/tests/data/eval/code_mmlu", {"python_http"});
  ASSERT_EQ(data.subjects.size(), 1u);
  EXPECT_EQ(data.subjects[0].category, "networking");
  EXPECT_EQ(data.subjects[0].dev.size(), 5u);
  EXPECT_EQ(data.subjects[0].test.size(), 15u);
  EXPECT_EQ(data.sha256.size(), 64u);
  EXPECT_EQ(mmlu_category("anatomy"), "other");
  EXPECT_EQ(mmlu_category("python_http"), "");
}

TEST(Mmlu, DatasetDigestChangesWithAnyFile) {
  Data d;
  const std::string before = load_mmlu(d.dir.path(), {}).sha256;
  write(d.dir / "test/high_school_physics_test.csv", "Q1?,a,b,c,d,A\nQ2?,e,f,g,h,D\n");
  EXPECT_NE(load_mmlu(d.dir.path(), {}).sha256, before);
}

TEST(MmluBadInput, OneClearErrorEach) {
  Data d;
  const std::string dir = d.dir.path();
  EXPECT_EQ(error_of([&] { load_mmlu(dir, {"astronomy"}); }),
            "--subjects: unknown subject 'astronomy' (no test/astronomy_test.csv in " + dir +
                "; subjects there: high_school_physics)");
  EXPECT_EQ(error_of([&] { load_mmlu(dir + "/nowhere", {}); }),
            "--data-dir " + dir + "/nowhere: no test/ directory (expected test/SUBJECT_test.csv)");

  write(dir + "/test/high_school_physics_test.csv", "Q1?,a,b,c,d,A\nQ2?,e,f,g,C\n");  // missing a field
  EXPECT_EQ(
      error_of([&] { load_mmlu(dir, {}); }),
      dir + "/test/high_school_physics_test.csv:2: 5 fields; an MMLU record has 6 (question, A, B, C, D, answer)");
  write(dir + "/test/high_school_physics_test.csv", "Q1?,a,b,c,d,E\n");
  EXPECT_EQ(error_of([&] { load_mmlu(dir, {}); }),
            dir + "/test/high_school_physics_test.csv:1: answer 'E' is not one of A, B, C, D");
  write(dir + "/test/high_school_physics_test.csv", "Q1?,a,,c,d,A\n");
  EXPECT_EQ(error_of([&] { load_mmlu(dir, {}); }), dir + "/test/high_school_physics_test.csv:1: choice B is empty");
  write(dir + "/test/high_school_physics_test.csv", "Q1?,a,b,c,d,A\n\"Q2,e,f,g,h,C\n");  // malformed CSV
  EXPECT_EQ(error_of([&] { load_mmlu(dir, {}); }),
            dir + "/test/high_school_physics_test.csv:2: a quoted field is not closed before the end of the file");
  write(dir + "/test/high_school_physics_test.csv", "\n\n");  // empty dataset
  EXPECT_EQ(error_of([&] { load_mmlu(dir, {}); }), dir + "/test/high_school_physics_test.csv: no questions");
  write(dir + "/test/high_school_physics_test.csv", "Q1?,a,b,c,d,A\n");
  std::filesystem::remove(dir + "/dev/high_school_physics_dev.csv");
  EXPECT_EQ(error_of([&] { load_mmlu(dir, {}); }),
            dir + "/dev/high_school_physics_dev.csv: missing (the few-shot examples of subject high_school_physics)");
  std::filesystem::remove(dir + "/test/high_school_physics_test.csv");
  EXPECT_EQ(error_of([&] { load_mmlu(dir, {}); }), "--data-dir " + dir + ": test/ holds no SUBJECT_test.csv file");
}

}  // namespace
}  // namespace kiln::eval
