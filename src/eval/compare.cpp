#include "eval/compare.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace kiln::eval {
namespace {

const nlohmann::json& member(const nlohmann::json& j, const char* key, const std::string& name) {
  if (!j.is_object() || !j.contains(key)) fail("{}: not a kiln eval report (no \"{}\")", name, key);
  return j.at(key);
}

std::string dataset_digest(const nlohmann::json& j, const std::string& name) {
  const auto& d = member(j, "dataset", name);
  if (!d.is_object() || !d.contains("sha256") || !d["sha256"].is_string())
    fail("{}: not a kiln eval report (no dataset.sha256)", name);
  return d["sha256"].get<std::string>();
}

}  // namespace

bool CompareResult::pass() const {
  return std::all_of(rows.begin(), rows.end(), [](const CompareRow& r) { return r.pass; });
}

std::string CompareResult::table(const std::vector<std::string>& names) const {
  size_t w = 6;
  for (const auto& r : rows) w = std::max(w, r.figure.size());
  std::string s = fmt::format("{:<{}}", "figure", w);
  for (size_t i = 0; i < names.size(); ++i)
    s += fmt::format("  {:>22}", names[i].size() > 22 ? names[i].substr(names[i].size() - 22) : names[i]);
  s += "  tolerance  result\n";
  for (const auto& r : rows) {
    s += fmt::format("{:<{}}", r.figure, w);
    for (size_t i = 0; i < r.values.size(); ++i)
      s += i == 0 ? fmt::format("  {:>22.4f}", r.values[0])
                  : fmt::format("  {:>11.4f} ({:+8.4f})", r.values[i], r.values[i] - r.values[0]);
    s += fmt::format("  {:>9.4f}  {}\n", r.tolerance, r.pass ? "pass" : "FAIL");
  }
  return s;
}

CompareResult compare_reports(const std::vector<nlohmann::json>& reports, const std::vector<std::string>& names,
                              const CompareOptions& o) {
  if (reports.size() < 2) fail("kiln eval compare: give at least two reports (the first is the baseline)");
  const auto kind = member(reports[0], "eval", names[0]);
  const std::string digest = dataset_digest(reports[0], names[0]);
  for (size_t i = 1; i < reports.size(); ++i) {
    if (member(reports[i], "eval", names[i]) != kind)
      fail("{} is a kiln eval {} report, {} a kiln eval {} report", names[0], kind.dump(), names[i],
           reports[i]["eval"].dump());
    if (dataset_digest(reports[i], names[i]) != digest)
      fail("{} and {} were made on different datasets (sha256 {} and {})", names[0], names[i], digest,
           dataset_digest(reports[i], names[i]));
  }
  std::vector<std::string> figures = o.figures;
  if (figures.empty())
    for (const auto& [k, v] : member(reports[0], "figures", names[0]).items()) figures.push_back(k);
  for (const auto& [k, t] : o.per_figure)
    if (std::find(figures.begin(), figures.end(), k) == figures.end())
      fail("--tolerance-for {}: no such figure is compared (figures: {})", k, fmt::join(figures, ", "));
  CompareResult res;
  for (const auto& f : figures) {
    CompareRow row;
    row.figure = f;
    row.tolerance = o.per_figure.count(f) ? o.per_figure.at(f) : o.tolerance;
    for (size_t i = 0; i < reports.size(); ++i) {
      const auto& figs = member(reports[i], "figures", names[i]);
      if (!figs.is_object() || !figs.contains(f) || !figs[f].is_number()) fail("{}: no figure \"{}\"", names[i], f);
      row.values.push_back(figs[f].get<double>());
      if (i > 0 && row.values[0] - row.values[i] > row.tolerance) row.pass = false;
    }
    res.rows.push_back(std::move(row));
  }
  return res;
}

}  // namespace kiln::eval
