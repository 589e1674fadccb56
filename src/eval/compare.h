// kiln eval compare: the figures of several eval reports (--json-out of kiln eval summarize / mmlu) side by side,
// each against the first (the baseline), with pass/fail: a figure fails when a report is more than its tolerance
// (in the figure's own units: ROUGE and accuracy points) below the baseline. Reports must be of one kind and one
// dataset (the same sha256).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kiln::eval {

struct CompareOptions {
  double tolerance = 1.0;                    // default tolerance, in points
  std::map<std::string, double> per_figure;  // NAME -> tolerance
  std::vector<std::string> figures;          // compare only these (default: every figure of the baseline)
};

struct CompareRow {
  std::string figure;
  std::vector<double> values;  // per report
  double tolerance = 0;
  bool pass = true;
};

struct CompareResult {
  std::vector<CompareRow> rows;
  bool pass() const;
  std::string table(const std::vector<std::string>& names) const;  // the side-by-side text
};

// `names` label the reports in errors. Throws kiln::Error for reports of different kinds or datasets, a figure
// missing from a report, or a --tolerance-for / --figures name that no report has.
CompareResult compare_reports(const std::vector<nlohmann::json>& reports, const std::vector<std::string>& names,
                              const CompareOptions& o);

}  // namespace kiln::eval
