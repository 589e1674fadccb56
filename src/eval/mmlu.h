// MMLU in Hendrycks' layout: DIR/dev/SUBJECT_dev.csv (the few-shot examples) and DIR/test/SUBJECT_test.csv, no
// header, columns question, A, B, C, D, answer (a letter). Fields are taken as they are (no number parsing).
// Optional DIR/categories.json {"SUBJECT": "CATEGORY"} names categories for subjects outside MMLU's 57.
//
// Prompts (docs/eval.md):
//   letters (methods generate and loglikelihood), Hendrycks' and TensorRT-LLM's mmlu.py format:
//     "The following are multiple choice questions (with answers) about" + " " + SUBJECT with "_" -> " " + ".\n\n"
//     then k dev examples  QUESTION "\nA. " A "\nB. " B "\nC. " C "\nD. " D "\nAnswer:" " " ANSWER "\n\n"
//     and the question the same way, ending at "\nAnswer:". (The two spaces after "about" are the original's.)
//   cloze (method continuation), format qa: lm-eval's mmlu_continuation format:
//     "The following are questions (with answers) about " + SUBJECT with "_" -> " " + ".\n\n", then k dev
//     examples "Question: " QUESTION "\nAnswer: " ANSWER_TEXT "\n\n", and "Question: " QUESTION "\nAnswer:";
//     the candidates are " " + each choice's text;
//   cloze, format plain (text that continues on the next line, as code): no header; k dev examples
//     QUESTION "\n" ANSWER_TEXT "\n\n", then QUESTION; the candidates are "\n" + each choice's text.
#pragma once
#include <array>
#include <map>
#include <string>
#include <vector>

namespace kiln::eval {

struct MmluQuestion {
  std::string question;
  std::array<std::string, 4> choices;
  int answer = 0;  // 0..3 for A..D
  int line = 0;    // where it starts in its file
};

struct MmluSubject {
  std::string name, category;
  std::vector<MmluQuestion> dev, test;
};

struct MmluData {
  std::vector<MmluSubject> subjects;  // sorted by name
  std::string sha256;                 // of every file read, in order: "NAME\n" + the file's SHA-256 per file
  size_t num_test() const;
};

// Reads the subjects named (all that have a test file when `subjects` is empty). Errors name the file and line:
// a missing directory or file, an unknown subject (listing the known ones), a record without 6 fields, an answer
// that is not A-D, an empty field, a subject without test questions, malformed CSV.
MmluData load_mmlu(const std::string& dir, const std::vector<std::string>& subjects);

// MMLU's own categories (STEM, humanities, social sciences, other) for its 57 subjects; "" for another subject.
std::string mmlu_category(const std::string& subject);

enum class ClozeFormat { QA, Plain };
ClozeFormat cloze_format_from_name(const std::string& name);  // "qa" | "plain"; throws naming them otherwise
const char* cloze_format_name(ClozeFormat f);

std::string letter_prompt(const MmluSubject& s, const MmluQuestion& q, int k);
std::string cloze_prompt(const MmluSubject& s, const MmluQuestion& q, int k, ClozeFormat f);
std::string cloze_candidate(const MmluQuestion& q, int choice, ClozeFormat f);  // the text scored after the prompt

// Accuracy per subject, per category and over all questions (each question weighs the same).
struct MmluTally {
  struct Count {
    int64_t correct = 0, total = 0;
    double accuracy() const { return total ? double(correct) / double(total) : 0.0; }
  };
  std::map<std::string, Count> subjects, categories;
  Count all;
  void add(const MmluSubject& s, bool correct);
};

}  // namespace kiln::eval
