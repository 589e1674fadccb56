#include "eval/mmlu.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "eval/csv.h"
#include "eval/sha256.h"
#include "io/json_file.h"

namespace kiln::eval {
namespace fs = std::filesystem;

namespace {

constexpr const char* kLetters = "ABCD";

// Hendrycks et al.'s grouping of the 57 subjects, as lm-eval reports it.
const std::map<std::string, std::string>& builtin_categories() {
  static const std::map<std::string, std::string> m = [] {
    std::map<std::string, std::string> c;
    for (const char* s :
         {"abstract_algebra", "astronomy", "college_biology", "college_chemistry", "college_computer_science",
          "college_mathematics", "college_physics", "computer_security", "conceptual_physics", "electrical_engineering",
          "elementary_mathematics", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
          "high_school_mathematics", "high_school_physics", "high_school_statistics", "machine_learning"})
      c[s] = "STEM";
    for (const char* s :
         {"formal_logic", "high_school_european_history", "high_school_us_history", "high_school_world_history",
          "international_law", "jurisprudence", "logical_fallacies", "moral_disputes", "moral_scenarios", "philosophy",
          "prehistory", "professional_law", "world_religions"})
      c[s] = "humanities";
    for (const char* s :
         {"econometrics", "high_school_geography", "high_school_government_and_politics", "high_school_macroeconomics",
          "high_school_microeconomics", "high_school_psychology", "human_sexuality", "professional_psychology",
          "public_relations", "security_studies", "sociology", "us_foreign_policy"})
      c[s] = "social sciences";
    for (const char* s : {"anatomy", "business_ethics", "clinical_knowledge", "college_medicine", "global_facts",
                          "human_aging", "management", "marketing", "medical_genetics", "miscellaneous", "nutrition",
                          "professional_accounting", "professional_medicine", "virology"})
      c[s] = "other";
    return c;
  }();
  return m;
}

std::vector<MmluQuestion> read_questions(const std::string& path, std::string& digest) {
  const std::string text = read_text_file(path);
  digest += fs::path(path).filename().string() + "\n" + sha256_hex(text) + "\n";
  std::vector<MmluQuestion> out;
  for (CsvRecord& r : parse_csv(text, path)) {
    if (r.fields.size() != 6)
      fail("{}:{}: {} fields; an MMLU record has 6 (question, A, B, C, D, answer)", path, r.line, r.fields.size());
    MmluQuestion q;
    q.line = r.line;
    q.question = std::move(r.fields[0]);
    for (int j = 0; j < 4; ++j) q.choices[size_t(j)] = std::move(r.fields[size_t(j) + 1]);
    const std::string& a = r.fields[5];
    if (a.size() != 1 || a[0] < 'A' || a[0] > 'D')
      fail("{}:{}: answer '{}' is not one of A, B, C, D", path, r.line, a.substr(0, 20));
    q.answer = a[0] - 'A';
    if (q.question.empty()) fail("{}:{}: the question is empty", path, r.line);
    for (int j = 0; j < 4; ++j)
      if (q.choices[size_t(j)].empty()) fail("{}:{}: choice {} is empty", path, r.line, kLetters[j]);
    out.push_back(std::move(q));
  }
  return out;
}

std::string spaced(const std::string& subject) {
  std::string s = subject;
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

std::string letter_example(const MmluQuestion& q, bool with_answer) {
  std::string s = q.question;
  for (int j = 0; j < 4; ++j) s += std::string("\n") + kLetters[j] + ". " + q.choices[size_t(j)];
  s += "\nAnswer:";
  if (with_answer) s += std::string(" ") + kLetters[q.answer] + "\n\n";
  return s;
}

std::string cloze_example(const MmluQuestion& q, bool with_answer, ClozeFormat f) {
  std::string s = f == ClozeFormat::QA ? "Question: " + q.question + "\nAnswer:" : q.question;
  if (with_answer) s += cloze_candidate(q, q.answer, f) + "\n\n";
  return s;
}

}  // namespace

size_t MmluData::num_test() const {
  size_t n = 0;
  for (const auto& s : subjects) n += s.test.size();
  return n;
}

std::string mmlu_category(const std::string& subject) {
  const auto& m = builtin_categories();
  auto it = m.find(subject);
  return it == m.end() ? "" : it->second;
}

MmluData load_mmlu(const std::string& dir, const std::vector<std::string>& wanted) {
  const fs::path test_dir = fs::path(dir) / "test", dev_dir = fs::path(dir) / "dev";
  if (!fs::is_directory(test_dir)) fail("--data-dir {}: no test/ directory (expected test/SUBJECT_test.csv)", dir);
  if (!fs::is_directory(dev_dir)) fail("--data-dir {}: no dev/ directory (expected dev/SUBJECT_dev.csv)", dir);
  std::vector<std::string> known;
  for (const auto& e : fs::directory_iterator(test_dir)) {
    const std::string f = e.path().filename().string();
    const std::string suffix = "_test.csv";
    if (f.size() > suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
      known.push_back(f.substr(0, f.size() - suffix.size()));
  }
  std::sort(known.begin(), known.end());
  if (known.empty()) fail("--data-dir {}: test/ holds no SUBJECT_test.csv file", dir);
  std::vector<std::string> names = wanted.empty() ? known : wanted;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (const auto& n : names)
    if (!std::binary_search(known.begin(), known.end(), n)) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail("--subjects: unknown subject '{}' (no test/{}_test.csv in {}; subjects there: {})", n, n, dir, list);
    }
  std::map<std::string, std::string> extra;
  const fs::path cat_file = fs::path(dir) / "categories.json";
  if (fs::exists(cat_file)) {
    const auto j = read_json_file(cat_file.string());
    if (!j.is_object()) fail("{}: expected an object {{\"SUBJECT\": \"CATEGORY\"}}", cat_file.string());
    for (const auto& [k, v] : j.items()) {
      if (!v.is_string()) fail("{}: the category of '{}' is not a string", cat_file.string(), k);
      extra[k] = v.get<std::string>();
    }
  }
  MmluData data;
  std::string digest;
  for (const auto& n : names) {
    MmluSubject s;
    s.name = n;
    s.category = extra.count(n) ? extra[n] : mmlu_category(n);
    if (s.category.empty()) s.category = "other";
    const fs::path dev_file = dev_dir / (n + "_dev.csv");
    if (!fs::exists(dev_file)) fail("{}: missing (the few-shot examples of subject {})", dev_file.string(), n);
    s.dev = read_questions(dev_file.string(), digest);
    s.test = read_questions((test_dir / (n + "_test.csv")).string(), digest);
    if (s.test.empty()) fail("{}: no questions", (test_dir / (n + "_test.csv")).string());
    data.subjects.push_back(std::move(s));
  }
  data.sha256 = sha256_hex(digest);
  return data;
}

std::string letter_prompt(const MmluSubject& s, const MmluQuestion& q, int k) {
  std::string p = "The following are multiple choice questions (with answers) about " + spaced(s.name) + ".\n\n";
  p.insert(p.find("about") + 5, " ");  // Hendrycks' format_subject() prefixes a space: "about  SUBJECT."
  for (int i = 0; i < k && size_t(i) < s.dev.size(); ++i) p += letter_example(s.dev[size_t(i)], true);
  return p + letter_example(q, false);
}

ClozeFormat cloze_format_from_name(const std::string& name) {
  if (name == "qa") return ClozeFormat::QA;
  if (name == "plain") return ClozeFormat::Plain;
  fail("--continuation-format '{}': expected qa or plain", name);
}

const char* cloze_format_name(ClozeFormat f) { return f == ClozeFormat::QA ? "qa" : "plain"; }

std::string cloze_candidate(const MmluQuestion& q, int choice, ClozeFormat f) {
  return (f == ClozeFormat::QA ? " " : "\n") + q.choices[size_t(choice)];
}

std::string cloze_prompt(const MmluSubject& s, const MmluQuestion& q, int k, ClozeFormat f) {
  std::string p = f == ClozeFormat::QA ? "The following are questions (with answers) about " + spaced(s.name) + ".\n\n"
                                       : std::string();
  for (int i = 0; i < k && size_t(i) < s.dev.size(); ++i) p += cloze_example(s.dev[size_t(i)], true, f);
  return p + cloze_example(q, false, f);
}

void MmluTally::add(const MmluSubject& s, bool correct) {
  for (Count* c : {&subjects[s.name], &categories[s.category], &all}) {
    c->correct += correct;
    ++c->total;
  }
}

}  // namespace kiln::eval
