#include "eval/summarize.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "eval/runner.h"
#include "io/json_file.h"
#include "runtime/engine.h"

namespace kiln::eval {
namespace {

// Each non-blank line of a JSONL file as a JSON object, with its line number.
std::vector<std::pair<int, nlohmann::json>> read_jsonl(const std::string& path) {
  std::istringstream in(read_text_file(path));
  std::vector<std::pair<int, nlohmann::json>> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = parse_json(line);
    } catch (const Error& e) {
      fail("{}:{}: malformed JSON: {}", path, n, e.what());
    }
    if (!j.is_object()) fail("{}:{}: expected a JSON object per line", path, n);
    out.emplace_back(n, std::move(j));
  }
  return out;
}

std::string string_field(const nlohmann::json& j, const std::string& field, const std::string& where,
                         const char* flag) {
  auto it = j.find(field);
  if (it == j.end()) fail("{}: no field \"{}\" (set the field's name with {})", where, field, flag);
  if (!it->is_string()) fail("{}: field \"{}\" is not a string", where, field);
  return it->get<std::string>();
}

}  // namespace

std::vector<SummarizeRecord> read_summarize_dataset(const std::string& path, const DatasetFields& f) {
  std::vector<SummarizeRecord> out;
  for (auto& [n, j] : read_jsonl(path)) {
    if (f.max_samples > 0 && int64_t(out.size()) == f.max_samples) break;
    const std::string where = fmt::format("{}:{}", path, n);
    SummarizeRecord r;
    r.line = n;
    r.input = string_field(j, f.input, where, "--input-field");
    r.reference = string_field(j, f.reference, where, "--reference-field");
    out.push_back(std::move(r));
  }
  if (out.empty()) fail("--dataset {}: no records (an empty dataset)", path);
  return out;
}

std::vector<std::string> generate_summaries(Executor& ex, const Tokenizer& tok,
                                            const std::vector<SummarizeRecord>& records, const SummarizeOptions& o,
                                            const std::string& dataset_name) {
  const EngineLimits& lim = ex.engine().limits();
  if (o.output_len < 1) fail("--output-len {}: must be positive", o.output_len);
  if (o.output_len >= lim.max_seq_len)
    fail("--output-len {}: the engine's max_seq_len is {}", o.output_len, lim.max_seq_len);
  int64_t max_input = std::min(lim.max_input_len, lim.max_seq_len - o.output_len);
  if (o.max_input_len > 0) max_input = std::min(max_input, o.max_input_len);
  const std::vector<int32_t> suffix = tok.encode(o.prompt_suffix, false);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& r : records) {
    std::vector<int32_t> ids = tok.encode(r.input + o.prompt_suffix);
    if (int64_t(ids.size()) > max_input) {
      const int64_t keep = max_input - int64_t(suffix.size());
      if (keep < 1) fail("--prompt-suffix is {} tokens: no room for the input under {}", suffix.size(), max_input);
      ids = tok.encode(r.input);
      ids.resize(size_t(std::min<int64_t>(keep, int64_t(ids.size()))));
      ids.insert(ids.end(), suffix.begin(), suffix.end());
    }
    prompts.push_back(std::move(ids));
  }
  std::vector<std::string> out(records.size());
  RunSpec spec;
  spec.count = records.size();
  spec.label = "summarize";
  spec.describe = [&](size_t i) { return fmt::format("{}:{}", dataset_name, records[i].line); };
  spec.make = [&](size_t i) {
    Request q;
    q.input_ids = prompts[i];
    q.max_new_tokens = o.output_len;
    const auto& stops = tok.stop_ids();
    if (stops.empty()) {
      q.end_id = -1;
    } else {
      q.end_id = stops[0];
      for (size_t k = 1; k < stops.size(); ++k) q.stop_sequences.push_back({stops[k]});
    }
    return q;
  };
  spec.on_done = [&](size_t i, Response& r) {
    std::vector<int32_t> ids = r.output_ids.at(0);
    const auto& stops = tok.stop_ids();
    while (!ids.empty() && std::find(stops.begin(), stops.end(), ids.back()) != stops.end()) ids.pop_back();
    std::string text = tok.decode(ids, true);
    const size_t b = text.find_first_not_of(" \t\r\n"), e = text.find_last_not_of(" \t\r\n");
    out[i] = b == std::string::npos ? "" : text.substr(b, e - b + 1);
  };
  run_requests(ex, spec);
  return out;
}

std::vector<std::string> read_predictions(const std::string& path, size_t count) {
  std::vector<std::string> out;
  // A report of kiln eval summarize (--json-out): its predictions.
  nlohmann::json whole;
  try {
    whole = parse_json(read_text_file(path));
  } catch (const Error&) {
  }
  if (whole.is_object() && whole.contains("predictions")) {
    const auto& p = whole["predictions"];
    for (size_t i = 0; p.is_array() && i < p.size() && out.size() < count; ++i) {
      if (!p[i].is_string()) fail("{}: predictions[{}] is not a string", path, i);
      out.push_back(p[i].get<std::string>());
    }
    if (out.size() < count)
      fail("--compare-with {}: {} predictions for {} records (one per record, in dataset order)", path, out.size(),
           count);
    return out;
  }
  for (auto& [n, j] : read_jsonl(path)) {
    if (out.size() == count) break;
    const std::string where = fmt::format("{}:{}", path, n);
    const char* field = j.contains("prediction") ? "prediction" : "text";
    auto it = j.find(field);
    if (it == j.end()) fail("{}: no field \"prediction\" (or \"text\")", where);
    if (!it->is_string()) fail("{}: field \"{}\" is not a string", where, field);
    out.push_back(it->get<std::string>());
  }
  if (out.size() < count)
    fail("--compare-with {}: {} predictions for {} records (one line per record, in dataset order)", path, out.size(),
         count);
  return out;
}

}  // namespace kiln::eval
